# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seal a value to the control plane's public key, so only the control plane can read what a playbook
returns with set_stats (AWX and Semaphore show a job's artifacts to everyone who may see the job)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json

from ansible.errors import AnsibleFilterError

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:  # reported when the filter is used
    X25519PrivateKey = None

# The format, which pressluft_lib/storage/secret_store.py opens: base64(ephemeral X25519 public key (32
# bytes) + ChaCha20-Poly1305 ciphertext of the JSON value); the key is HKDF-SHA256 of the shared secret
# with this info and both public keys. One ephemeral key per value, so the all-zero nonce is never reused.
INFO = b'pressluft seal v1'
NONCE = bytes(12)


def seal(value, recipient):
    """The sealed JSON of `value` for the X25519 public key `recipient` (base64)."""
    if X25519PrivateKey is None:
        raise AnsibleFilterError('pressluft.wordpress.seal needs the Python package cryptography')
    try:
        peer = X25519PublicKey.from_public_bytes(base64.b64decode(str(recipient), validate=True))
    except (binascii.Error, ValueError):
        raise AnsibleFilterError('pressluft.wordpress.seal: the recipient is no X25519 key') from None
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ephemeral = X25519PrivateKey.generate()
    ours = ephemeral.public_key().public_bytes(*raw)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=INFO + ours + peer.public_bytes(*raw)).derive(ephemeral.exchange(peer))
    data = json.dumps(value, sort_keys=True).encode()
    return base64.b64encode(ours + ChaCha20Poly1305(key).encrypt(NONCE, data, None)).decode()


class FilterModule(object):
    def filters(self):
        return {'seal': seal}

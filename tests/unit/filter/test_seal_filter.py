"""pressluft.wordpress.seal on the controller, opened by the control plane's SecretStore."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pressluft.wordpress.plugins.filter.seal import seal
from cryptography.fernet import Fernet

from pressluft_lib.storage.secret_store import SecretStore

VALUE = {"db_password": "a-new-password-\"quoted\"-\u00e9", "n": 1}


def test_only_the_recipient_opens_a_sealed_value_and_each_seal_differs():
    secret_key = Fernet.generate_key()
    store = SecretStore(secret_key)
    key = store.sealing_public_key()
    assert SecretStore(secret_key).sealing_public_key() == key  # derived from the store's key: stable
    first, second = seal(VALUE, key), seal(VALUE, key)
    assert first != second and VALUE["db_password"] not in first
    assert store.unseal(first) == store.unseal(second) == VALUE


@pytest.mark.parametrize("recipient", ["", "not base64!", "AAAA", "A" * 43])
def test_a_bad_recipient_is_refused(recipient):
    with pytest.raises(AnsibleFilterError, match="seal"):
        seal(VALUE, recipient)

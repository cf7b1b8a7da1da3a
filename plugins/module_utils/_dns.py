# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal DNS stub resolver: A and AAAA answers from one given server, over UDP (TCP when truncated).

The DNS check before a certificate order asks a configurable server (the tests use Pebble's challenge
test server on loopback), which the system resolver cannot; and it must see the AAAA record too.
No dependency: the controller runs it, and dnspython is not part of ansible-core.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket
import struct

TYPES = {'A': 1, 'AAAA': 28}


class DNSError(Exception):
    pass


def parse_server(text):
    """'127.0.0.1', '127.0.0.1:8053', '[::1]:53' -> (host, port)."""
    host, port = text, 53
    if text.startswith('['):
        host, _sep, rest = text[1:].partition(']')
        if rest:
            port = int(rest.lstrip(':'))
    elif text.count(':') == 1:
        host, port = text.split(':')
        port = int(port)
    ipaddress.ip_address(host)  # a resolver is an address: never a name to resolve first
    if not 0 < port < 65536:
        raise ValueError('port out of range')
    return host, port


def _query(name, qtype):
    qid = struct.unpack('>H', os.urandom(2))[0]
    header = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)  # recursion desired
    qname = b''.join(struct.pack('B', len(label)) + label.encode('ascii') for label in name.split('.'))
    return qid, header + qname + b'\x00' + struct.pack('>HH', TYPES[qtype], 1)


def _skip_name(msg, pos):
    while True:
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length
        if length == 0:
            return pos


def _answers(msg, qid, qtype):
    rid, flags, qd, an = struct.unpack('>HHHH', msg[:8])
    if rid != qid:
        raise DNSError('answer for another query')
    rcode = flags & 0xF
    if rcode == 3:  # NXDOMAIN
        return []
    if rcode != 0:
        raise DNSError('server answered rcode %d' % rcode)
    pos = 12
    for _i in range(qd):
        pos = _skip_name(msg, pos) + 4
    found = []
    for _i in range(an):
        pos = _skip_name(msg, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack('>HHIH', msg[pos:pos + 10])
        pos += 10
        data = msg[pos:pos + rdlen]
        pos += rdlen
        if rtype == TYPES[qtype] == 1 and rdlen == 4:
            found.append(socket.inet_ntop(socket.AF_INET, data))
        elif rtype == TYPES[qtype] == 28 and rdlen == 16:
            found.append(socket.inet_ntop(socket.AF_INET6, data))
    return sorted(set(found))


def resolve(name, qtype, server, timeout=5.0):
    """Sorted addresses of `name`'s `qtype` ('A' or 'AAAA') records as `server` (host, port) answers."""
    host, port = server
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    qid, packet = _query(name, qtype)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.sendto(packet, (host, port))
        msg = sock.recv(4096)
    except (socket.timeout, OSError) as exc:
        raise DNSError('no answer from %s port %d: %s' % (host, port, exc)) from None
    finally:
        sock.close()
    if len(msg) >= 4 and struct.unpack('>H', msg[2:4])[0] & 0x0200:  # truncated: ask again over TCP
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.sendall(struct.pack('>H', len(packet)) + packet)
            size = struct.unpack('>H', _recv(sock, 2))[0]
            msg = _recv(sock, size)
        finally:
            sock.close()
    try:
        return _answers(msg, qid, qtype)
    except (struct.error, IndexError):
        raise DNSError('malformed answer from %s port %d' % (host, port)) from None


def _recv(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise DNSError('connection closed')
        data += chunk
    return data


def system_resolve(name):
    """(A, AAAA) through the system resolver (getaddrinfo), when no server is configured."""
    a, aaaa = set(), set()
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    except socket.gaierror:
        return [], []
    for family, _t, _p, _c, addr in infos:
        (a if family == socket.AF_INET else aaaa).add(addr[0])
    return sorted(a), sorted(aaaa)

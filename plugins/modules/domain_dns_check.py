#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: domain_dns_check
short_description: Check that every domain resolves to the node, before a certificate is ordered
description:
  - Looks up the A and AAAA records of each name in O(names) and compares them with O(addresses), the
    node's addresses (its inventory address and floating IPs).
  - Fails with a message starting C(DOMAIN_DNS_MISMATCH) that names what resolves where when a name has
    no A or AAAA record, or any record points elsewhere; an AAAA record pointing elsewhere is a mismatch too
    (clients that prefer IPv6 would reach another host, and so may the ACME server).
  - Changes nothing; runs where the control plane runs (C(delegate_to) or a play on C(localhost)).
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
options:
  names:
    description: Host names (A-labels) to check.
    type: list
    elements: str
    required: true
  addresses:
    description:
      - The node's IPv4 and IPv6 addresses; a name must resolve only to these.
      - A host name stands for the addresses the system resolver gives for it.
    type: list
    elements: str
    required: true
  resolver:
    description:
      - C(ADDRESS) or C(ADDRESS:PORT) (C([IPv6]:PORT)) of the DNS server to ask.
      - Empty for the system resolver.
    type: str
    default: ""
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 5
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Check DNS before ordering
  pressluft.wordpress.domain_dns_check:
    names: [shop.example.com, www.shop.example.com]
    addresses: [203.0.113.10, "2001:db8::10"]
  delegate_to: localhost
'''

RETURN = r'''
records:
  description: The A and AAAA records found, per name.
  returned: always
  type: dict
  sample: {"shop.example.com": {"A": ["203.0.113.10"], "AAAA": []}}
mismatches:
  description: One line per name that does not resolve to the node only.
  returned: always
  type: list
  elements: str
  sample: ["www.shop.example.com resolves to A 203.0.113.10, AAAA 2001:db8::99 (elsewhere)"]
'''

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils import _dns
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import validate_domain


def check(names, addresses, lookup):
    """(records, mismatches); lookup(name) -> (A list, AAAA list)."""
    mine = set(str(ipaddress.ip_address(a)) for a in addresses)
    records, mismatches = {}, []
    for name in names:
        a, aaaa = lookup(name)
        records[name] = {'A': a, 'AAAA': aaaa}
        if not a and not aaaa:
            mismatches.append('%s: no A or AAAA record' % name)
            continue
        shown = ['%s %s%s' % (kind, x, '' if x in mine else ' (elsewhere)')
                 for kind, found in (('A', a), ('AAAA', aaaa)) for x in found]
        if any(x not in mine for x in a + aaaa):
            mismatches.append('%s resolves to %s' % (name, ', '.join(shown)))
    return records, mismatches


def main():
    module = AnsibleModule(
        argument_spec=dict(
            names=dict(type='list', elements='str', required=True),
            addresses=dict(type='list', elements='str', required=True),
            resolver=dict(type='str', default=''),
            timeout=dict(type='float', default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        for name in p['names']:
            validate_domain(name)
        addresses = []
        for address in p['addresses']:
            try:
                addresses.append(str(ipaddress.ip_address(address)))
            except ValueError:  # an inventory host name: its own addresses
                a, aaaa = _dns.system_resolve(validate_domain(address))
                addresses.extend(a + aaaa)
        server = _dns.parse_server(p['resolver']) if p['resolver'] else None
    except ValueError as exc:
        module.fail_json(msg='invalid input: %s' % exc)
    if not addresses:
        module.fail_json(msg='the node has no IP address to compare with (give its inventory address)')

    def lookup(name):
        if server is None:
            return _dns.system_resolve(name)
        return tuple(_dns.resolve(name, kind, server, p['timeout']) for kind in ('A', 'AAAA'))

    try:
        records, mismatches = check(p['names'], addresses, lookup)
    except _dns.DNSError as exc:
        module.fail_json(msg='DOMAIN_DNS_MISMATCH: the DNS check got no answer: %s' % exc)
    if mismatches:
        module.fail_json(
            msg='DOMAIN_DNS_MISMATCH: %s (node addresses: %s; fix DNS, or --force to order anyway)'
            % ('; '.join(mismatches), ', '.join(addresses)),
            records=records, mismatches=mismatches)
    module.exit_json(changed=False, records=records, mismatches=[])


if __name__ == '__main__':
    main()

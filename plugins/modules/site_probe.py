#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: site_probe
short_description: Health-check an environment through nginx, or a new release through its PHP-FPM pool
description:
  - Requests each of O(urls) and requires a 2xx answer, the optional O(marker) in every body, and no
    new C(PHP Fatal error) or C(PHP Parse error) in the pool's error log after O(log_offset).
  - With O(via=http) the requests go through nginx on O(address):O(port) with the Host header O(host),
    exactly as visitors reach the live release. While the environment has HTTP basic auth on
    (M(pressluft.wordpress.env_auth)) they log in as C(pressluft-probe) with the node's own password.
  - With O(via=fastcgi) the requests go straight to the environment's PHP-FPM socket with
    C(SCRIPT_FILENAME) and C(DOCUMENT_ROOT) in O(root), as nginx would send them if C(current) pointed
    there. This checks a release through the real pool (user, C(open_basedir), opcache) before the switch.
  - Read-only. Always returns RV(log_size), so a caller can record the log offset before a switch.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
options:
  host:
    description: Host header (one of the environment's domains).
    type: str
    required: true
  urls:
    description: Paths to request, each starting with C(/).
    type: list
    elements: str
    default: ['/']
  marker:
    description: A string every answer's body must contain.
    type: str
  via:
    description: Through nginx (V(http)) or straight to the pool (V(fastcgi)).
    type: str
    choices: [http, fastcgi]
    default: http
  address:
    description: Address nginx listens on (V(via=http)).
    type: str
    default: 127.0.0.1
  port:
    description: Port nginx listens on (V(via=http)).
    type: int
    default: 80
  root:
    description:
      - Document root for V(via=fastcgi), a release directory. Defaults to the real path of C(current).
    type: path
  socket:
    description: PHP-FPM socket for V(via=fastcgi). Defaults to the environment's pool socket.
    type: path
  error_log:
    description: The pool's PHP error log. Defaults to C(/var/www/sites/<site>/<env>/logs/php-error.log).
    type: path
  log_offset:
    description:
      - Byte offset of the error log before the change under test; only fatals after it count.
      - When the log is now shorter (rotated), the whole log counts. Without it the log is not checked.
    type: int
  timeout:
    description: Seconds for each request.
    type: float
    default: 15
  fail_unhealthy:
    description: Fail the task when a check fails (the message says why). When V(false), report only.
    type: bool
    default: true
attributes:
  check_mode:
    description: Read-only; runs in check mode as well.
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Check a new release through the pool before the switch
  pressluft.wordpress.site_probe:
    site: shop
    host: shop.example.com
    via: fastcgi
    root: /var/www/sites/shop/production/releases/20260102T030405-17

- name: Check the live site through nginx
  pressluft.wordpress.site_probe:
    site: shop
    host: shop.example.com
    urls: [/, /shop/]
    marker: </html>
    log_offset: "{{ before.log_size }}"
'''

RETURN = r'''
healthy:
  description: Whether every check passed.
  returned: always
  type: bool
reason:
  description: Why the environment is unhealthy (empty when healthy).
  returned: always
  type: str
  sample: "/: HTTP 500"
checks:
  description: One entry per URL with its status, body size and verdict.
  returned: always
  type: list
  elements: dict
  sample: [{url: /, status: 200, bytes: 5120, ok: true, reason: ""}]
fatals:
  description: New fatal or parse error lines of the error log (at most 10).
  returned: always
  type: list
  elements: str
log_size:
  description: Size of the error log in bytes now (0 when it does not exist).
  returned: always
  type: int
root:
  description: Document root used for V(via=fastcgi).
  returned: when via is fastcgi
  type: str
'''

import base64
import http.client as http_client
import os
import socket
import struct
from urllib.parse import urlsplit

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._env_auth import PROBE_USER

FCGI_BEGIN = 1
FCGI_END = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FATAL_MARKS = ('PHP Fatal error', 'PHP Parse error')


def _record(kind, content, request_id=1):
    return struct.pack('>BBHHBB', 1, kind, request_id, len(content), 0, 0) + content


def _pair(name, value):
    name, value = name.encode('utf-8'), value.encode('utf-8')
    out = b''
    for item in (name, value):
        size = len(item)
        out += struct.pack('>B', size) if size < 128 else struct.pack('>I', size | 0x80000000)
    return out + name + value


def _recv_exact(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise IOError('PHP-FPM closed the connection')
        data += chunk
    return data


def fastcgi_get(sock_path, root, host, url, timeout):
    """One GET through a FastCGI socket, with the parameters nginx's pressluft-php snippet sends."""
    parts = urlsplit(url)
    script = parts.path if parts.path.endswith('.php') and os.path.isfile(root + parts.path) else '/index.php'
    params = {
        'GATEWAY_INTERFACE': 'CGI/1.1', 'SERVER_SOFTWARE': 'pressluft-probe', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'REQUEST_METHOD': 'GET', 'REQUEST_URI': url, 'QUERY_STRING': parts.query, 'DOCUMENT_URI': script,
        'SCRIPT_NAME': script, 'SCRIPT_FILENAME': root + script, 'DOCUMENT_ROOT': root, 'PATH_INFO': '',
        'SERVER_NAME': host, 'SERVER_ADDR': '127.0.0.1', 'SERVER_PORT': '80', 'REMOTE_ADDR': '127.0.0.1',
        'REMOTE_PORT': '0', 'HTTP_HOST': host, 'HTTP_USER_AGENT': 'pressluft-probe', 'REQUEST_SCHEME': 'http',
    }
    body = b''.join(_pair(k, v) for k, v in params.items())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(sock_path)
        sock.sendall(_record(FCGI_BEGIN, struct.pack('>HB5x', 1, 0)) + _record(FCGI_PARAMS, body)
                     + _record(FCGI_PARAMS, b'') + _record(FCGI_STDIN, b''))
        out = b''
        while True:
            _v, kind, _id, length, padding, _r = struct.unpack('>BBHHBB', _recv_exact(sock, 8))
            content = _recv_exact(sock, length + padding)[:length]
            if kind == FCGI_STDOUT:
                out += content
            elif kind == FCGI_END:
                break
    finally:
        sock.close()
    head, _sep, payload = out.partition(b'\r\n\r\n')
    status = 200
    for line in head.split(b'\r\n'):
        if line.lower().startswith(b'status:'):
            status = int(line.split(b':', 1)[1].split()[0])
    return status, payload


def probe_login(path):
    """The Authorization header of the health checks' own basic auth login while the environment has basic
    auth on (module env_auth keeps its password in the root-only file path), else None."""
    try:
        with open(path) as f:
            password = f.read().strip()
    except (OSError, IOError):
        return None
    token = base64.b64encode(('%s:%s' % (PROBE_USER, password)).encode('utf-8')).decode('ascii')
    return 'Basic ' + token


def http_get(address, port, host, url, timeout, authorization=None):
    conn = http_client.HTTPConnection(address, port, timeout=timeout)
    headers = {'Host': host, 'User-Agent': 'pressluft-probe'}
    if authorization:
        headers['Authorization'] = authorization
    try:
        conn.request('GET', url, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def new_fatals(path, offset):
    """(fatal lines after offset, current size) of the error log."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return [], 0
    if offset is None:
        return [], size
    with open(path, 'rb') as f:
        f.seek(offset if offset <= size else 0)
        text = f.read().decode('utf-8', 'replace')
    return [line for line in text.splitlines() if any(m in line for m in FATAL_MARKS)][:10], size


def _check(p, names):
    for url in p['urls']:
        if not url.startswith('/') or any(c in url for c in ' \r\n'):
            raise ValueError('invalid health URL %r: give a path starting with / without spaces' % url)
    if not p['urls']:
        raise ValueError('urls must not be empty')
    if p['log_offset'] is not None and p['log_offset'] < 0:
        raise ValueError('log_offset must not be negative')


def main():
    module, names = env_module(dict(
        host=dict(type='str', required=True),
        urls=dict(type='list', elements='str', default=['/']),
        marker=dict(type='str'),
        via=dict(type='str', choices=['http', 'fastcgi'], default='http'),
        address=dict(type='str', default='127.0.0.1'),
        port=dict(type='int', default=80),
        root=dict(type='path'),
        socket=dict(type='path'),
        error_log=dict(type='path'),
        log_offset=dict(type='int'),
        timeout=dict(type='float', default=15),
        fail_unhealthy=dict(type='bool', default=True),
    ), check=_check, fencing=False)
    p = module.params
    result = dict(changed=False, checks=[])
    if p['via'] == 'fastcgi':
        root = os.path.realpath(p['root'] or names['current']).rstrip('/')
        if not root.startswith(names['releases'] + '/') or not os.path.isdir(root):
            module.fail_json(msg='root %s is not a release directory of %s/%s' % (root, p['site'], p['env']))
        result['root'] = root

    for url in p['urls']:
        try:
            if p['via'] == 'fastcgi':
                sock = p['socket'] or names['pool_socket']
                status, body = fastcgi_get(sock, root, p['host'], url, p['timeout'])
            else:
                status, body = http_get(p['address'], p['port'], p['host'], url, p['timeout'],
                                        probe_login(names['auth_probe']))
        except (IOError, OSError, socket.error, http_client.HTTPException, ValueError) as exc:
            status, body = 0, b''
            reason = '%s: no answer (%s)' % (url, exc)
        else:
            reason = ''
            if not 200 <= status < 300:
                reason = '%s: HTTP %d' % (url, status)
            elif p['marker'] and p['marker'].encode('utf-8') not in body:
                reason = '%s: marker %r not in the body' % (url, p['marker'])
        result['checks'].append(dict(url=url, status=status, bytes=len(body), ok=not reason, reason=reason))

    result['fatals'], result['log_size'] = new_fatals(p['error_log'] or names['logs'] + '/php-error.log',
                                                      p['log_offset'])
    reasons = [c['reason'] for c in result['checks'] if c['reason']]
    if result['fatals']:
        reasons.append('new PHP fatal in the error log: %s' % result['fatals'][0][-300:])
    result['healthy'] = not reasons
    result['reason'] = '; '.join(reasons)
    if reasons and p['fail_unhealthy']:
        module.fail_json(msg='unhealthy: %s' % result['reason'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

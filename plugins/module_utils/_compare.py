# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers of the env_compare module: the normalisation that makes two renders of one page equal
when only volatile bits differ (nonces, ver= strings, timestamps, the two environments' URLs), the line
diff and its changed fraction, the sample of a sitemap, and the PHP errors of a log slice."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import hashlib
import json
import re

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urlparse import urlsplit

MAX_DIFF_LINES = 60
_LINE_CHARS = 300

# Order matters: URLs first (a nonce or ver= inside a URL is then normalised on the placeholder).
_VOLATILE = [
    # WordPress nonces, in JSON (wpApiSettings, heartbeat), attributes and query strings.
    (re.compile(r'((?:_wp)?nonce\\?"?\s*[:=]\s*\\?["\']?)[0-9a-f]{10}', re.I), r"\1NONCE"),
    (re.compile(r'(nonce=)[0-9a-f]{10}', re.I), r"\1NONCE"),
    (re.compile(r'(name=["\'][a-z_-]*nonce["\'][^>]*value=["\'])[0-9a-f]{10}', re.I), r"\1NONCE"),
    # Asset versions: ver=6.4.2, ver=1700000000.
    (re.compile(r'([?&](?:#038;|amp;)?ver=)[A-Za-z0-9._-]+'), r"\1VER"),
    # Dates and times: ISO 8601, RFC 822 (feeds), and bare Unix timestamps.
    (re.compile(r'\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?'), "TIME"),
    (re.compile(r'(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}'), "TIME"),
    (re.compile(r'(?<![\w.])1[0-9]{9}(?:\.\d+)?(?![\w.])'), "TIME"),
]


def normalise(body, hosts):
    """`body` (text) with the volatile bits replaced; every URL of `hosts` becomes //SITE."""
    text = body
    for host in sorted(set(h for h in hosts if h), key=len, reverse=True):
        quoted = re.escape(host)
        text = re.sub(r'https?:(\\?/\\?/)' + quoted + r'(?![\w.-])', r'SITE:\1SITE', text)
        text = re.sub(r'(?<![\w.-])' + quoted + r'(?![\w.-])', 'SITE', text)
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def lines(text):
    """Comparable lines: JSON pretty-printed with sorted keys, HTML and XML one tag per line (pages are
    often one long line). A long line keeps its start and a hash of the whole, so no change is missed."""
    stripped = text.strip()
    if stripped[:1] in ('{', '['):
        try:
            text = json.dumps(json.loads(stripped), indent=1, sort_keys=True)
        except ValueError:
            pass
    out = []
    for line in text.replace('><', '>\n<').splitlines():
        line = line.strip()
        if len(line) > _LINE_CHARS:
            line = line[:_LINE_CHARS - 20] + ' ... #' + hashlib.sha1(line.encode('utf-8')).hexdigest()[:10]
        if line:
            out.append(line)
    return out


def compare(before, after):
    """(changed fraction 0..1, unified diff lines, at most MAX_DIFF_LINES) of two normalised texts."""
    a, b = lines(before), lines(after)
    if a == b:
        return 0.0, []
    ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    diff = list(difflib.unified_diff(a, b, 'production', 'clone', n=1, lineterm=''))
    return round(1.0 - ratio, 4), diff[:MAX_DIFF_LINES]


_LOC_RE = re.compile(r'<loc>\s*([^<\s]+)\s*</loc>')


def sitemap_locs(xml):
    """The <loc> URLs of a sitemap (or of a sitemap index), in order."""
    return [u.replace('&amp;', '&') for u in _LOC_RE.findall(xml)]


def on_host(url, host):
    """The path (with query) of `url` when it is an http(s) URL of exactly `host`, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ('http', 'https') or (parts.hostname or '').lower() != host.lower():
        return None
    if parts.port not in (None, 80, 443) or parts.username or parts.password:
        return None
    path = parts.path or '/'
    if not path.startswith('/') or any(c in path + parts.query for c in ' \r\n\t\\'):
        return None
    return path + ('?' + parts.query if parts.query else '')


_PHP_ERROR_RE = re.compile(r'PHP (Fatal error|Parse error|Warning|Notice|Deprecated|Recoverable fatal error)')
FATAL_KINDS = ('Fatal error', 'Parse error', 'Recoverable fatal error')


def php_errors(text, limit=20):
    """(lines with a PHP error, kind counts) of a log slice; lines cut to 500 characters."""
    found, counts = [], {}
    for line in text.splitlines():
        m = _PHP_ERROR_RE.search(line)
        if not m:
            continue
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        if len(found) < limit:
            found.append(line[-500:])
    return found, counts

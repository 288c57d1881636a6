#!/usr/bin/env python3
"""Checks the markdown links of README.md, docs/*.md and docs/performance/*.md:
every relative link [text](path#anchor) must name a file that exists and,
when it has an anchor, a heading of that file (GitHub's anchor rules:
lower case, punctuation dropped, spaces as hyphens, -1, -2... for repeats).
Links to web addresses are not checked.  Prints each broken link and exits 1
if there is one.

    scripts/check-doc-links.py [ROOT]     (ROOT: the repository, default ..)
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), '..'))
FENCE = re.compile(r'^\s*(```|~~~)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
# [text](target) or ![alt](target); the target ends at the first space or ")".
LINK = re.compile(r'!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
INLINE_CODE = re.compile(r'(`+).*?\1')


def prose_lines(path):
    """The lines of a markdown file outside fenced code blocks."""
    inside = False
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                inside = not inside
                continue
            if not inside:
                yield number, line.rstrip('\n')


def slug(text):
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)  # a link: its text
    text = text.strip().lower()
    text = ''.join(c for c in text if c.isalnum() or c in ' -_')
    return text.replace(' ', '-')


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen = {}
        found = set()
        for _, line in prose_lines(path):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else '%s-%d' % (base, n))
        _anchors[path] = found
    return _anchors[path]


def files():
    yield os.path.join(ROOT, 'README.md')
    for d in ('docs', os.path.join('docs', 'performance')):
        full = os.path.join(ROOT, d)
        if os.path.isdir(full):
            for name in sorted(os.listdir(full)):
                if name.endswith('.md'):
                    yield os.path.join(full, name)


def prose(path):
    """The file's text with fenced code blocks and inline code blanked out,
    lines kept where they were (a link's text may run over a line end)."""
    lines = {number: line for number, line in prose_lines(path)}
    last = max(lines, default=0)
    return '\n'.join(INLINE_CODE.sub(lambda m: ' ' * len(m.group(0)),
                                      lines.get(n, ''))
                     for n in range(1, last + 1))


def check(path):
    broken = []
    text = prose(path)
    for m in LINK.finditer(text):
        number = text.count('\n', 0, m.start(1)) + 1
        target = m.group(1)
        if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):
            continue  # http:, https:, mailto:
        name, _, anchor = target.partition('#')
        dest = (os.path.normpath(os.path.join(os.path.dirname(path), name))
                if name else path)
        where = '%s:%d: %s' % (os.path.relpath(path, ROOT), number, target)
        if not os.path.exists(dest):
            broken.append(where + ' (no such file)')
        elif anchor and dest.endswith('.md') and anchor not in anchors(dest):
            broken.append(where + ' (no such heading)')
    return broken


def main():
    broken = []
    count = 0
    for path in files():
        if os.path.exists(path):
            count += 1
            broken += check(path)
    for b in broken:
        print(b)
    if broken:
        print('%d broken link(s) in %d files' % (len(broken), count))
        return 1
    print('doc links: %d files, all links resolve' % count)
    return 0


if __name__ == '__main__':
    sys.exit(main())

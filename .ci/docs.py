"""Render the chapters to a static HTML site in `_site/` (`make docs`), for machines without quarto.

    python .ci/docs.py                          # nbs/ -> _site/
    python .ci/docs.py --nbs /tmp/nbs_copy --out /tmp/site

The nbdev route (quarto: `nbdev_docs`, the docs workflow in .github/) needs the quarto binary; this one needs only
nbconvert. It renders the notebooks as they are stored (run `make nbs` first for the outputs; a notebook without
outputs gives a page without outputs): an index page from README.md that lists the chapters in order with an "Open in
Colab" link each, one page per chapter in file-name order with prev/next/index navigation, `nbs/results.md` as the last
page. Like nbdev's docs: cells with `#| hide` (or `#| include: false`) are left out, directive lines (`#| export`...)
are not shown, `#| echo: false` shows only the output and `#| output: false` only the code. Figures are embedded in the
pages (PNG data URIs); the notebook styles go once into `nb.css`."""
import argparse, configparser, copy, html, posixpath, re, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- if resources.dfine.math -%}{{ super() }}{%- endif -%}{%- endblock -%}
{%- block html_head_js_mermaidjs -%}{%- if resources.dfine.mermaid -%}{{ super() }}{%- endif -%}{%- endblock -%}
{%- block body_header -%}{{ super() }}
{{ resources.dfine.nav }}
{%- endblock body_header -%}
{% block body_footer %}{{ resources.dfine.nav }}
{{ super() }}{% endblock body_footer %}
"""
SITE_CSS = """
/* dfine_nb site: navigation bar and page width */
main { max-width: 1100px; margin: 0 auto; padding: 0 1em 2em; }
nav.dfine-nav { display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: baseline; padding: .6em 0;
  border-bottom: 1px solid #ddd; margin-bottom: 1em; font-family: var(--jp-ui-font-family); font-size: 14px; }
nav.dfine-nav:last-of-type { border-bottom: none; border-top: 1px solid #ddd; margin: 2em 0 0; }
nav.dfine-nav a { text-decoration: none; color: #1a5fb4; }
nav.dfine-nav a:hover { text-decoration: underline; }
nav.dfine-nav .dfine-home { font-weight: bold; }
nav.dfine-nav .dfine-colab { margin-left: auto; }
.jp-RenderedMarkdown pre { background: #f5f5f5; padding: .6em .8em; border-radius: 3px; }
table.dfine-chapters td { vertical-align: top; padding: .3em .8em; text-align: left; }
"""


def settings():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'settings.ini')
    return cfg['DEFAULT']


# ---- what a page shows: nbdev's rules for hidden cells and directives ----

def directives(cell):
    from nbdev.process import extract_directives
    return extract_directives(copy.deepcopy(cell), remove=False)


def shown_source(source):
    "The code without its leading `#|` directive lines and without lines marked `#| hide_line`"
    from nbdev.process import first_code_ln
    lines = source.splitlines()
    first = first_code_ln(lines)
    lines = lines[first:] if first is not None else []
    return '\n'.join(ln for ln in lines if not re.search(r'#\|\s*hide_line\s*$', ln)).strip('\n')


def display_cells(nb):
    "The cells a reader sees, as nbdev's docs show them"
    cells = []
    for cell in nb.cells:
        if cell.cell_type == 'raw':
            continue
        if cell.cell_type == 'code':
            direc = directives(cell)
            if 'hide' in direc or direc.get('include:', [''])[0].lower() == 'false':
                continue
            cell.source = shown_source(cell.source)
            if direc.get('output:', [''])[0].lower() == 'false':
                cell.outputs = []
            tags = set(cell.metadata.get('tags', []))
            if direc.get('echo:', [''])[0].lower() == 'false':
                tags.add('dfine_remove_input')
            cell.metadata = {'tags': sorted(tags)} if tags else {}
            if not cell.source and not cell.outputs:
                continue
        cells.append(cell)
    nb.cells = cells
    return nb


def title_of(nb, fallback):
    "The chapter's title and description from its first markdown cell (`# Title` and `> description`)"
    md = next((c.source for c in nb.cells if c.cell_type == 'markdown'), '')
    title = next((ln[2:].strip() for ln in md.splitlines() if ln.startswith('# ')), fallback)
    desc = next((ln[1:].strip() for ln in md.splitlines() if ln.startswith('>')), '')
    return title, desc


# ---- links and anchors ----

def github_slug(text):
    "GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens"
    text = re.sub(r'[^\w\- ]', '', html.unescape(re.sub(r'<[^>]+>', '', text)).strip().lower())
    return text.replace(' ', '-')


def fix_headings(page):
    "Heading ids as GitHub and quarto make them, so that `results.md#a-heading-06c` links land"
    def one(m):
        level, inner = m['level'], m['inner']
        text = re.sub(r'<a class="anchor-link".*?</a>', '', inner)
        slug = github_slug(text)
        inner = re.sub(r'(<a class="anchor-link" href=")#[^"]*', rf'\g<1>#{slug}', inner)
        return f'<h{level} id="{slug}">{inner}</h{level}>'
    return re.sub(r'<h(?P<level>[1-6]) id="[^"]*">(?P<inner>.*?)</h(?P=level)>', one, page, flags=re.S)


class Links:
    "Rewrite relative links of a page: chapters and results to their pages, other repository files to GitHub"
    def __init__(self, pages, cfg):
        self.pages = pages          # repository path (nbs/00_core.ipynb, nbs/results.md, README.md) -> page file
        self.site_files = set(pages.values()) | {'nb.css'}
        branch = cfg.get('branch', 'main')
        self.blob = f"https://github.com/{cfg['user']}/{cfg['repo']}/blob/{branch}/"

    def target(self, href, base):
        if re.match(r'^([a-z][a-z0-9+.-]*:|#|/)', href, re.I):
            return href
        path, _, anchor = href.partition('#')
        if path in self.site_files:
            return href     # a link the site made (navigation, chapter list)
        path = posixpath.normpath(posixpath.join(base, path)) if path else ''
        if not path:
            return href
        page = self.pages.get(path)
        if page:
            return page + (f'#{anchor}' if anchor else '')
        return self.blob + path + (f'#{anchor}' if anchor else '')

    def rewrite(self, page, base):
        return re.sub(r'(<a\s[^>]*?href=")([^"]*)"', lambda m: f'{m[1]}{self.target(html.unescape(m[2]), base)}"',
                      page)


# ---- pages ----

def exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    exp = HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'dfine.html.j2': TEMPLATE})],
                       template_file='dfine.html.j2')
    exp.exclude_input_prompt = exp.exclude_output_prompt = True
    exp.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'dfine_remove_input'}), enabled=True)
    return exp


STYLE = re.compile(r'<style[^>]*>.*?</style>\s*', re.S)


def split_css(page):
    "The page's <head> styles (the same on every page) out into nb.css"
    head, sep, body = page.partition('</head>')
    css = '\n'.join(re.sub(r'^<style[^>]*>|</style>\s*$', '', s.strip()) for s in STYLE.findall(head))
    head = STYLE.sub('', head).replace('<title>', '<link rel="stylesheet" href="nb.css">\n<title>', 1)
    return head + sep + body, css


def nav_bar(order, i, cfg, colab=None):
    "index | prev | next | Open in Colab"
    def link(j, arrow_left):
        name, title = order[j]['page'], html.escape(order[j]['label'])
        return f'<a href="{name}">&larr; {title}</a>' if arrow_left else f'<a href="{name}">{title} &rarr;</a>'
    parts = [f'<a class="dfine-home" href="index.html">{html.escape(cfg.get("title", "index"))}</a>']
    if i > 0:
        parts.append(link(i - 1, True))
    if i + 1 < len(order):
        parts.append(link(i + 1, False))
    if colab:
        parts.append(f'<a class="dfine-colab" href="{colab}">Open in Colab</a>')
    return '<nav class="dfine-nav">' + ' '.join(parts) + '</nav>'


def colab_url(cfg, name):
    return (f"https://colab.research.google.com/github/{cfg['user']}/{cfg['repo']}/blob/"
            f"{cfg.get('branch', 'main')}/nbs/{name}.ipynb")


def markdown_nb(text):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    nb.cells = [nbformat.v4.new_markdown_cell(text)]
    return nb


def inline_markdown(text):
    "A one-line description's markdown (code spans, links) as HTML"
    import mistune
    return re.sub(r'^<p>|</p>\s*$', '', mistune.html(text).strip())


def chapter_table(chapters, cfg):
    rows = ''.join(
        f'<tr><td><a href="{c["page"]}">{c["stem"]}</a></td><td><a href="{c["page"]}">{html.escape(c["title"])}</a>'
        f'<br><small>{inline_markdown(c["desc"])}</small></td>'
        f'<td><a href="{colab_url(cfg, c["stem"])}">Open in Colab</a></td></tr>\n' for c in chapters)
    return f'## Chapters\n\n<table class="dfine-chapters">\n{rows}</table>\n\nMeasurements: [results](results.html).\n'


def index_markdown(readme, table):
    "The README with the chapter list before its first section"
    m = re.search(r'^## ', readme, re.M)
    return readme[:m.start()] + table + '\n' + readme[m.start():] if m else readme + '\n\n' + table


def uses_math(nb):
    md = '\n'.join(c.source for c in nb.cells if c.cell_type == 'markdown')
    return bool(re.search(r'\$\$|\\\(|\$[^\s$][^$\n]*\$', md))


def render(exp, nb, name, nav, title):
    resources = {'metadata': {'name': title},
                 'dfine': {'nav': nav, 'math': uses_math(nb),
                           'mermaid': any('```mermaid' in c.source for c in nb.cells if c.cell_type == 'markdown')}}
    page, _ = exp.from_notebook_node(nb, resources=resources)
    return page


def build(nbs_dir, out, readme):
    import nbformat
    start = time.time()
    cfg = settings()
    chapters = []
    for path in sorted(nbs_dir.glob('[0-9]*.ipynb')):
        nb = nbformat.read(path, as_version=4)
        title, desc = title_of(nb, path.stem)
        chapters.append(dict(stem=path.stem, path=path, page=f'{path.stem}.html', title=title, desc=desc,
                             label=f'{path.stem}: {title}'))
    results = nbs_dir / 'results.md'
    order = [dict(page='index.html', label='index')] + chapters
    if results.exists():
        order.append(dict(page='results.html', label='Results', path=results))
    pages = {f'nbs/{c["stem"]}.ipynb': c['page'] for c in chapters}
    pages.update({'nbs/results.md': 'results.html', 'nbs/results.ipynb': 'results.html', 'README.md': 'index.html'})
    links = Links(pages, cfg)

    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob('*.html'), out / 'nb.css']:      # pages of renamed or removed chapters go
        old.unlink(missing_ok=True)
    exp = exporter()
    css = None
    written = []
    site_title = cfg.get('title', 'dfine_nb')
    for i, item in enumerate(order):
        if item['page'] == 'index.html':
            text = readme.read_text() if readme.exists() else f'# {site_title}\n'
            nb, base, title = markdown_nb(index_markdown(text, chapter_table(chapters, cfg))), '', site_title
            colab = None
        elif item['page'] == 'results.html':
            nb, base, title = markdown_nb(results.read_text()), 'nbs', f'Results - {site_title}'
            colab = None
        else:
            nb = display_cells(nbformat.read(item['path'], as_version=4))
            base, title, colab = 'nbs', f'{item["label"]} - {site_title}', colab_url(cfg, item['stem'])
        page = render(exp, nb, item['page'], nav_bar(order, i, cfg, colab), title)
        page, page_css = split_css(page)
        css = css or page_css
        page = links.rewrite(fix_headings(page), base)
        (out / item['page']).write_text(page)
        written.append(out / item['page'])
    (out / 'nb.css').write_text(css + SITE_CSS)
    written.append(out / 'nb.css')
    total = sum(p.stat().st_size for p in written)
    for p in written:
        print(f'{p.stat().st_size / 1e3:9.1f} kB  {p.name}')
    print(f'docs: {len(written)} files, {total / 1e6:.2f} MB in {out} ({time.time() - start:.0f} s); '
          f'open {out / "index.html"}')
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', default=str(REPO / 'nbs'), help='the notebooks folder')
    ap.add_argument('--out', default=str(REPO / '_site'), help='the site folder (its *.html and nb.css are replaced)')
    ap.add_argument('--readme', default=str(REPO / 'README.md'))
    args = ap.parse_args()
    nbs_dir = Path(args.nbs).resolve()
    if not any(nbs_dir.glob('[0-9]*.ipynb')):
        sys.exit(f'docs: no numbered notebooks in {nbs_dir}')
    return build(nbs_dir, Path(args.out).resolve(), Path(args.readme))


if __name__ == '__main__':
    sys.exit(main())

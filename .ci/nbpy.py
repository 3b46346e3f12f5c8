"""Authoring helper: convert between a notebook and a 'percent' script, both ways.

    python .ci/nbpy.py py2nb nbs/_src/03_model.py nbs/03_model.ipynb
    python .ci/nbpy.py nb2py nbs/03_model.ipynb /tmp/03_model.py

The notebook stays the source of truth; the script form is only for editing in a text editor.
Cells: `# %%` starts a code cell (`# %% tags=["parameters"]` adds tags), `# %% [markdown]` a markdown
cell whose lines are `# `-prefixed. Cell ids are derived from the notebook name and the cell position,
so regenerating a notebook does not churn the exported module's headers."""
import hashlib, json, re, sys
from pathlib import Path
import nbformat

HDR = re.compile(r'^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$')

def py2nb(src, dst):
    cells, cur = [], None
    for line in Path(src).read_text().splitlines():
        m = HDR.match(line)
        if m:
            cur = {'md': bool(m['md']), 'tags': json.loads(m['tags']) if m['tags'] else [], 'lines': []}
            cells.append(cur); continue
        if cur is None: continue
        cur['lines'].append((line[2:] if line.startswith('# ') else line[1:] if line == '#' else line) if cur['md'] else line)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    stem = Path(dst).stem
    for i, c in enumerate(cells):
        while c['lines'] and not c['lines'][-1].strip(): c['lines'].pop()
        text = '\n'.join(c['lines'])
        cell = nbformat.v4.new_markdown_cell(text) if c['md'] else nbformat.v4.new_code_cell(text)
        cell.id = hashlib.sha1(f'{stem}-{i}'.encode()).hexdigest()[:8]
        if c['tags']: cell.metadata['tags'] = c['tags']
        nb.cells.append(cell)
    nbformat.write(nb, dst)

def nb2py(src, dst):
    nb, out = nbformat.read(src, as_version=4), []
    for c in nb.cells:
        tags = c.metadata.get('tags')
        t = f' tags={json.dumps(tags)}' if tags else ''
        if c.cell_type == 'markdown':
            out.append(f'# %% [markdown]{t}')
            out += [('# ' + l) if l else '#' for l in c.source.splitlines()]
        else:
            out.append(f'# %%{t}')
            out += c.source.splitlines()
        out.append('')
    Path(dst).write_text('\n'.join(out) + '\n')

if __name__ == '__main__':
    {'py2nb': py2nb, 'nb2py': nb2py}[sys.argv[1]](sys.argv[2], sys.argv[3])

"""Execute the numbered chapters headless, in place, and store their outputs without churn (`make nbs`).

    python .ci/nbs.py                                   # every nbs/[0-9]*.ipynb, 2 at a time
    python .ci/nbs.py nbs/00a_boxes.ipynb nbs/01a_images.ipynb
    python .ci/nbs.py --nbs /tmp/nbs_copy 00a_boxes     # a copy of nbs/ (names are looked up in --nbs)
    python .ci/nbs.py --check                           # CI: every chapter has outputs; total size under the limit
                                                        # (required once nbs/.outputs_required exists)

Each notebook runs in the `.venv` python3 kernel with its folder as working directory and the environment of
`.ci/test.sh` (one OpenMP thread, TQDM_DISABLE, PYTHONWARNINGS=ignore) except MPLBACKEND, which stays unset so the
inline backend stores the figures. Cells that nbdev_test skips are skipped the same way (settings.ini `tst_flags`,
`#| eval: false`, `nbdev_export(` cells, frontmatter `skip_exec`) and keep no outputs. Then the outputs are scrubbed so
that a second run stores the same bytes: stderr streams (logs with clock times, warnings, progress bars), execution
counts, widget views (tqdm.auto's bars: TQDM_DISABLE does not reach tqdm.notebook) and widget state, the clock time
that starts the project's log lines, absolute paths of the repository, of temporary folders and of the home folder
(replaced by `<repo>`, `<tmp>`, `~`), and finally `nbdev_clean --fname` on each executed notebook. A notebook whose cell
fails is not written; the run goes on with the others and exits 1 naming the notebook and the cell."""
import argparse, configparser, json, os, re, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / '.venv' / 'bin'
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
LOG_TIME = re.compile(r"(^|')\d\d:\d\d:\d\d(?= (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) )", re.MULTILINE)
LOCAL_PORT = re.compile(r'(127\.0\.0\.1:|localhost:|running on port: )\d+')   # a free port picked at run time
ELAPSED = re.compile(r'Elapsed Time: \d\d:\d\d:\d\d')                           # NNCF's progress lines


def tst_flags():
    "settings.ini `tst_flags`: the flags whose cells nbdev_test skips"
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'settings.ini')
    return set(cfg['DEFAULT'].get('tst_flags', '').split())


def chapters(nbs_dir):
    "The numbered notebooks of `nbs_dir`, in chapter (file-name) order"
    return sorted(nbs_dir.glob('[0-9]*.ipynb'))


def kernel_env():
    "The environment of .ci/test.sh, except MPLBACKEND (unset: the inline backend stores figures)"
    env = dict(os.environ)
    env['PATH'] = f'{VENV_BIN}{os.pathsep}{env.get("PATH", "")}'
    env.setdefault('GLIBC_TUNABLES', 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824')
    env['OMP_NUM_THREADS'] = '1'
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env.update(TQDM_DISABLE='1', PYTHONWARNINGS='ignore', PYTHONHASHSEED='0')
    env.pop('MPLBACKEND', None)
    return env


# ---- which cells run: the same decision as nbdev's test_nb/_no_eval ----

def skipped_cells(path, force_flags=()):
    "Ids of the cells nbdev_test would not run, or None when the whole notebook is skipped (`skip_exec`)"
    from fastcore.basics import str2bool
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor, nb_lang
    flags = tst_flags() - set(force_flags)
    nb = NBProcessor(path, procs=FrontmatterProc, process=True).nb
    fm = getattr(nb, 'frontmatter_', {})
    if str2bool(fm.get('skip_exec', False)) or nb_lang(nb) != 'python':
        return None

    def no_eval(cell):
        if cell.cell_type != 'code':
            return True
        if 'nbdev_export' + '(' in cell.source:
            return True
        direc = getattr(cell, 'directives_', {}) or {}
        if direc.get('eval:', [''])[0].lower() == 'false':
            return True
        return bool(flags & direc.keys())
    return {cell.get('id') for cell in nb.cells if cell.cell_type == 'code' and no_eval(cell)}


# ---- scrubbing: what a second run must store identically ----

def placeholders(nb_dir):
    "(absolute path, placeholder) pairs, the most specific first"
    pairs = [(nb_dir.resolve(), '<repo>/nbs'), (REPO, '<repo>')]
    pairs = [(str(p), s) for p, s in pairs]
    if str(REPO) != os.path.realpath(REPO):
        pairs.append((os.path.realpath(REPO), '<repo>'))
    return pairs


def scrub_text(text, pairs, html=False):
    "Absolute paths -> placeholders (HTML-escaped in HTML outputs, where `<repo>` would read as a tag)"
    lt, gt = ('&lt;', '&gt;') if html else ('<', '>')
    for path, holder in pairs:
        text = text.replace(path, holder.replace('<', lt).replace('>', gt))
    for tmp in {tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir()), '/tmp', '/var/tmp'}:
        # a temporary folder's random name -> <tmp>; what follows it (file names) stays
        text = re.sub(re.escape(tmp) + r'/[^/\s\'"<>&:,;)\]}]+', f'{lt}tmp{gt}', text)
    # the project's log lines start with the clock time (core's `%H:%M:%S LEVEL message`)
    text = LOG_TIME.sub(r'\1hh:mm:ss', text)
    text = LOCAL_PORT.sub(r'\1<port>', text)
    text = ELAPSED.sub('Elapsed Time: hh:mm:ss', text)
    home = str(Path.home())
    if home not in ('/', ''):
        text = re.sub(re.escape(home) + r'(?=[/\s\'"]|$)', '~', text)
    return text


def scrub_value(value, pairs, html=False):
    if isinstance(value, list):
        return [scrub_value(v, pairs, html) for v in value]
    return scrub_text(value, pairs, html) if isinstance(value, str) else value


def scrub_outputs(outputs, pairs):
    "Drop stderr, widget views and execution counts; replace absolute paths in text outputs"
    kept = []
    for out in outputs:
        if out.get('output_type') == 'stream':
            if out.get('name') == 'stderr':
                continue
            out['text'] = scrub_value(out['text'], pairs)
            previous = kept[-1] if kept else {}
            if previous.get('output_type') == 'stream' and previous.get('name') == out.get('name'):
                previous['text'] = ''.join(previous['text']) + ''.join(out['text'])   # how a stream was chunked varies
                continue
        if 'execution_count' in out:
            out['execution_count'] = None
        data = out.get('data', {})
        if WIDGET_MIME in data:
            continue    # a live widget (tqdm.auto's bar): nothing without its kernel, clock times in its text
        for mime in list(data):
            if mime.startswith('text/'):
                data[mime] = scrub_value(data[mime], pairs, html=mime in ('text/html', 'image/svg+xml'))
        kept.append(out)
    return kept


def scrub(nb, nb_dir):
    pairs = placeholders(nb_dir)
    nb.metadata.pop('widgets', None)
    nb.metadata.pop('papermill', None)
    for cell in nb.cells:
        if cell.cell_type == 'code':
            cell.execution_count = None
            cell.outputs = scrub_outputs(cell.outputs, pairs)
            cell.metadata.pop('execution', None)


def outputs_size(nb):
    "Bytes the stored outputs take in the notebook file"
    return sum(len(json.dumps(c['outputs'], indent=1)) for c in nb['cells']
               if c['cell_type'] == 'code' and c.get('outputs'))


def stored_outputs(nb):
    "{cell index: (id, outputs)} of the code cells, to tell which outputs a run changed"
    return {i: (c.get('id'), json.dumps(c.get('outputs', []), sort_keys=True))
            for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code'}


def changed_note(before, after):
    "Which cells' stored outputs this run changed: on a second run, anything listed churns"
    if not any(outs != '[]' for _, outs in before.values()):
        return ''     # first run on a notebook without outputs
    changed = [f'{i} ({cid})' for i, (cid, outs) in after.items() if before.get(i, (None, None)) != (cid, outs)]
    if not changed:
        return '  (outputs unchanged)'
    more = f' +{len(changed) - 6}' if len(changed) > 6 else ''
    return f'  (outputs changed in {len(changed)} cell(s): {", ".join(changed[:6])}{more})'


def fmt_size(n):
    return f'{n / 1e6:.2f} MB' if n >= 1e6 else f'{n / 1e3:.1f} kB'


def rel(path):
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# ---- one notebook (run in its own process) ----

def cell_label(nb, index):
    cell = nb.cells[index]
    first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith('#|')), '')
    return f'cell {index} (id {cell.get("id", "?")}: {first.strip()[:60]!r})'


def run_one(path, timeout, force_flags):
    "Execute `path` in place; print one line; return 0 or 1"
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    skip = skipped_cells(path, force_flags)
    nb = nbformat.read(path, as_version=4)
    before = stored_outputs(json.loads(path.read_text()))
    start = time.time()
    current = {'index': None}

    class Client(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type == 'code' and cell.get('id') in skip:
                cell.outputs = []
                cell.execution_count = None
                return cell
            current['index'] = cell_index
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    if skip is None:
        for cell in nb.cells:
            if cell.cell_type == 'code':
                cell.outputs = []
    else:
        client = Client(nb, timeout=timeout, startup_timeout=300, kernel_name='python3', allow_errors=False,
                        record_timing=False, resources={'metadata': {'path': str(path.parent)}})
        try:
            client.execute()
        except CellExecutionError as err:
            where = cell_label(nb, current['index']) if current['index'] is not None else 'kernel start'
            tb = ANSI.sub('', str(err)).strip().splitlines()
            print(f'FAILED {rel(path)}: {where} raised {err.ename}: {err.evalue}\n' + '\n'.join(tb[-15:]), flush=True)
            return 1
        except Exception as err:
            where = cell_label(nb, current['index']) if current['index'] is not None else 'kernel start'
            print(f'FAILED {rel(path)}: {where}: {type(err).__name__}: {err}', flush=True)
            return 1
    scrub(nb, path.parent)
    nbformat.write(nb, path)
    clean = subprocess.run([str(VENV_BIN / 'nbdev_clean'), '--fname', str(path)], cwd=REPO,
                           capture_output=True, text=True)
    if clean.returncode != 0:
        print(f'FAILED {rel(path)}: nbdev_clean: {clean.stderr.strip()[-500:]}', flush=True)
        return 1
    after = json.loads(path.read_text())
    size = outputs_size(after)
    note = '  (skip_exec: not run)' if skip is None else changed_note(before, stored_outputs(after))
    print(f'{time.time() - start:7.1f} s  {fmt_size(size):>10} outputs  {rel(path)}{note}', flush=True)
    return 0


# ---- the whole run ----

def resolve(names, nbs_dir):
    paths = []
    for name in names:
        for cand in (Path(name), nbs_dir / name, nbs_dir / f'{name}.ipynb'):
            if cand.is_file() and cand.suffix == '.ipynb':
                paths.append(cand.resolve())
                break
        else:
            sys.exit(f'nbs: no notebook {name!r} (looked in . and {nbs_dir})')
    return paths


def run_all(paths, jobs, timeout, force_flags):
    env = kernel_env()
    cmd = [sys.executable, str(Path(__file__).resolve()), '--one', '--timeout', str(timeout)]
    if force_flags:
        cmd += ['--flags', ' '.join(force_flags)]
    print(f'nbs: executing {len(paths)} notebook(s), {jobs} at a time, kernel python3 of {sys.executable}', flush=True)
    start = time.time()

    def one(path):
        proc = subprocess.run(cmd + [str(path)], env=env, cwd=REPO, capture_output=True, text=True)
        out = proc.stdout.strip() or f'FAILED {rel(path)}: exit {proc.returncode}\n{proc.stderr.strip()[-2000:]}'
        print(out, flush=True)
        return path, proc.returncode

    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(one, paths))
    failed = [p for p, rc in results if rc != 0]
    total = sum(outputs_size(json.loads(p.read_text())) for p in paths)
    print(f'nbs: {len(paths) - len(failed)} executed, {len(failed)} failed in {time.time() - start:.0f} s; '
          f'outputs of these notebooks: {fmt_size(total)}')
    if failed:
        print('nbs: FAILED: ' + ' '.join(rel(p) for p in failed) + ' (not written; see the cell above)')
    return 1 if failed else 0


def check(nbs_dir, required, max_mb):
    "Every chapter has at least one code cell with outputs (when `required`); all outputs together under `max_mb`"
    missing, total = [], 0
    for path in chapters(nbs_dir):
        nb = json.loads(path.read_text())
        total += outputs_size(nb)
        if not any(c['cell_type'] == 'code' and c.get('outputs') for c in nb['cells']):
            missing.append(path)
    print(f'notebook outputs: {fmt_size(total)} in {len(chapters(nbs_dir))} chapters (limit {max_mb} MB)')
    rc = 0
    if missing and required:
        for path in missing:
            print(f'{rel(path)} has no outputs: run `make nbs` and commit')
        rc = 1
    elif missing:
        print(f'notebook outputs not required yet ({rel(nbs_dir)}/.outputs_required absent): '
              f'{len(missing)} chapter(s) without outputs')
    if total > max_mb * 1e6:
        print(f'notebook outputs take {fmt_size(total)}, over {max_mb} MB: downscale the images or drop big outputs')
        rc = 1
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to run (default: every numbered one in --nbs)')
    ap.add_argument('--nbs', default=str(REPO / 'nbs'), help='the notebooks folder (default: the repo\'s nbs/)')
    ap.add_argument('--jobs', type=int, default=2, help='notebooks run at once')
    ap.add_argument('--timeout', type=int, default=int(os.environ.get('NBS_CELL_TIMEOUT', 1800)),
                    help='seconds one cell may run')
    ap.add_argument('--flags', default=os.environ.get('NBDEV_FLAGS', ''),
                    help='space-separated tst_flags to run anyway (as nbdev_test --flags)')
    ap.add_argument('--one', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--check', action='store_true', help='only check that every chapter has outputs (CI)')
    ap.add_argument('--required', choices=['auto', '0', '1'], default=os.environ.get('NBS_OUTPUTS_REQUIRED', 'auto'),
                    help='with --check: fail on a chapter without outputs (auto: when <nbs>/.outputs_required exists; '
                         'env NBS_OUTPUTS_REQUIRED)')
    ap.add_argument('--max-mb', type=float, default=float(os.environ.get('NBS_MAX_MB', 10)))
    args = ap.parse_args()
    nbs_dir = Path(args.nbs).resolve()
    force = args.flags.split()
    if args.check:
        required = (nbs_dir / '.outputs_required').exists() if args.required == 'auto' else args.required == '1'
        return check(nbs_dir, required, args.max_mb)
    if args.one:
        return run_one(Path(args.notebooks[0]), args.timeout, force)
    paths = resolve(args.notebooks, nbs_dir) if args.notebooks else chapters(nbs_dir)
    if not paths:
        sys.exit(f'nbs: no numbered notebooks in {nbs_dir}')
    return run_all(paths, max(1, args.jobs), args.timeout, force)


if __name__ == '__main__':
    sys.exit(main())

import shlex
from configparser import ConfigParser
import setuptools

config = ConfigParser(delimiters=['='])          # all settings live in settings.ini
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']
cfg_keys = 'version description keywords author author_email'.split()
for o in cfg_keys + 'lib_name user branch license status min_python audience language'.split():
    assert o in cfg, f'missing expected setting: {o}'
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable']
py_versions = '3.10 3.11 3.12 3.13'.split()
# optional extras: every `extra_<name> = pkgs` line of settings.ini becomes `pip install dfine_nb[<name>]`
extras = {k[len('extra_'):]: shlex.split(v) for k, v in cfg.items() if k.startswith('extra_')}
extras['dev'] = shlex.split(cfg.get('dev_requirements', ''))
setuptools.setup(
    name=cfg['lib_name'],
    license={'apache2': 'Apache-2.0', 'mit': 'MIT'}.get(cfg['license'].lower(), cfg['license']),
    classifiers=['Development Status :: ' + statuses[int(cfg['status']) - 1],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
        + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(cfg['min_python']):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=shlex.split(cfg.get('requirements', '')),
    extras_require=extras,
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    **{o: cfg[o] for o in cfg_keys})

"""``ddsolve sweep``: studies over a parameter grid (and seeds) on Dask, with resume.

::

    ddsolve sweep CONFIG.toml --param model.beta=2,3,4 [--param KEY=V1,V2,... ...] [--zip]
                  [--seeds K [--seed-key KEY]] [--command run|particles|validate|converge|steady]
                  [--set KEY=VALUE ...] [--out DIR] [--scheduler tcp://HOST:PORT | --workers N]
                  [--subprocess] [--quiet]

Every point of the grid is one run of ``ddsolve <command> CONFIG --out OUT/<name>-<hash8>
--set ... --quiet``, submitted to ``dask.distributed``: a local cluster of ``--workers``
processes (one thread each) by default, or the scheduler given, so the same study runs on
one machine or many (the workers must see the config and ``OUT`` at the same paths).
Results stream into ``OUT/sweep.csv`` as runs complete; a rerun skips the runs that
finished with status 0 under the same config, command and ddsolve version, and redoes
the others: a ``run`` or ``particles`` run killed or interrupted on the way continues from
its checkpoint (``--resume``), any other command starts again (``--overwrite``).

Modules: :mod:`~validation.sweep.params` (``--param`` parsing, points, names, resume
keys), :mod:`~validation.sweep.worker` (one run on a worker),
:mod:`~validation.sweep.study` (planning, the pre-check, submission, ``sweep.csv``) and
:mod:`~validation.sweep.command` (the CLI). Importing this package imports neither Dask
nor the solver.
"""

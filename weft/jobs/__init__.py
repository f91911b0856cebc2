"""Jobs: a task whose children are its steps' tasks (docs/jobs.md).

- :mod:`weft.jobs.definition` reads and checks a job file (TOML or JSON);
- :mod:`weft.jobs.progress` records what a job has submitted, so a restarted
  job resumes without running a step item twice or skipping one;
- :mod:`weft.jobs.runner` is the job's own task: it submits the steps;
- :mod:`weft.jobs.rollup` rebuilds a job's status per step from the broker;
- :mod:`weft.jobs.handle` is what ``WeftClient.job`` returns.

Jobs sit above the client (the runner submits tasks through it) and below
the CLI.
"""

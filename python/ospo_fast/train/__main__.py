"""``python -m ospo_fast.train``: the same as ``ospo-train`` (see :mod:`ospo_fast.train.cli`)."""

from ospo_fast.train.cli import main

raise SystemExit(main())

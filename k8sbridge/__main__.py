"""Allow ``python -m k8sbridge``."""

from k8sbridge import cli

raise SystemExit(cli.main())

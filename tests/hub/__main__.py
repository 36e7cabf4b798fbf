"""`python -m tests.hub` (make hub): both loopback hubs, until Ctrl-C."""

from tests.hub import main

main()

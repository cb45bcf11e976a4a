#!/usr/bin/env python
"""Django's command-line utility for administrative tasks: `aetherlink` in a checkout."""

from aetherlink.manage import main

if __name__ == "__main__":
    main()

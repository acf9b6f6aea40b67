"""The proxy variables torchenv honours, defined once.

The doctor reports them (upper case, as users set them); builds pass each one that is set, in
either case, by name only (`--build-arg NAME`): the value comes from the environment, and Docker
keeps these predefined proxy arguments out of the image history.
"""

from __future__ import annotations

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
BUILD_PROXY_VARS = (*PROXY_VARS, *(name.lower() for name in PROXY_VARS))

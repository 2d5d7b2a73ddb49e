"""Checks that the image import tools are installed (ids pinet.images.W001)."""

import shutil

from django.core.checks import Warning, register

# Debian package for each tool the import pipeline runs.
IMPORT_TOOLS = {
    "sfdisk": "fdisk",
    "mcopy": "mtools",
    "debugfs": "e2fsprogs",
    "xz": "xz-utils",
    "zstd": "zstd",
}


@register("pinet")
def check_import_tools(app_configs=None, **kwargs):
    missing = sorted(tool for tool in IMPORT_TOOLS if shutil.which(tool) is None)
    if not missing:
        return []
    packages = " ".join(sorted({IMPORT_TOOLS[tool] for tool in missing}))
    return [
        Warning(
            f"Image import tools are missing: {', '.join(missing)}. Image imports will fail on this host.",
            hint=f"apt-get install {packages} (only needed where the 'images' queue worker runs).",
            id="pinet.images.W001",
        )
    ]

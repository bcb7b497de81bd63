"""Where the device profiles live (shipped with the package, or the user's own: :mod:`workbench._infra.places`),
and which files a profile may name."""
import os
from pathlib import Path

from workbench._infra.errors import WorkbenchError
from workbench._infra.places import PROFILES, shipped_dir

PROFILES_DIR = shipped_dir(PROFILES)  # the shipped profiles (read-only; the user's own: places.user_dir(PROFILES))
OUTSIDE_FILES_ENV = "WORKBENCH_PROFILE_FILES_ANYWHERE"  # "1": a profile may name files outside its folder


def profile_file(profile_yaml: Path, name: str, field: str) -> Path:
    """A file that ``profile.yaml`` names (``lut:``, ``latency_model:``), kept inside the profile's folder.

    A profile is data someone may have sent you: it must not make the workbench open (and judge,
    and quote) ``/etc/passwd`` or ``../../secrets``. Absolute paths, ``..`` and symbolic links that
    lead out of the folder are refused unless the environment variable
    ``WORKBENCH_PROFILE_FILES_ANYWHERE=1`` says otherwise.
    """
    folder = profile_yaml.parent
    candidate = folder / name
    if os.environ.get(OUTSIDE_FILES_ENV) == "1":
        return candidate
    try:
        inside = candidate.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unrepresentable name
        inside = False
    if not inside:
        raise WorkbenchError(f"{field}: {name[:120]!r} leads outside the profile folder {folder} (refused; set "
                             f"{OUTSIDE_FILES_ENV}=1 to allow files elsewhere)", where=str(profile_yaml))
    return candidate

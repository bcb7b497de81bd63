"""Where the shipped data lives: the device profiles (``hw_profiles/``) next to the package."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = ROOT / "hw_profiles"

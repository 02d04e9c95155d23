"""The default recipe set, one YAML file per recipe; installed as ``pixline.recipes``."""
from pathlib import Path

DIRECTORY = Path(__file__).parent

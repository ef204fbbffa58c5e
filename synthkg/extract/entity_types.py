"""The entity types every extractor uses, and the mapping of the names small models give them."""

from __future__ import annotations

ENTITY_TYPES = ("PERSON", "ORGANIZATION", "LOCATION", "DATE", "WORK", "EVENT", "OTHER")
# Names small models use for the prompt's types.
_TYPE_ALIASES = {
    "PER": "PERSON",
    "PEOPLE": "PERSON",
    "ORG": "ORGANIZATION",
    "ORGANISATION": "ORGANIZATION",
    "COMPANY": "ORGANIZATION",
    "LOC": "LOCATION",
    "GPE": "LOCATION",
    "PLACE": "LOCATION",
    "COUNTRY": "LOCATION",
    "CITY": "LOCATION",
    "TIME": "DATE",
    "YEAR": "DATE",
    "WORK_OF_ART": "WORK",
    "BOOK": "WORK",
    "FILM": "WORK",
    "MOVIE": "WORK",
    "SONG": "WORK",
    "ALBUM": "WORK",
}


def normalize_type(raw: str) -> str:
    """One of ENTITY_TYPES: known aliases mapped, anything else OTHER."""
    key = raw.strip().upper().replace(" ", "_").replace("-", "_")
    key = _TYPE_ALIASES.get(key, key)
    return key if key in ENTITY_TYPES else "OTHER"

"""The people of an evaluation: one folder per person, split into train and test photos."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Person:
    name: str
    photos: tuple[Path, ...]


@dataclass(frozen=True)
class Split:
    """One protected user's photos: the tracker scrapes ``train`` (cloaked), meets ``test``."""

    person: Person
    train: tuple[Path, ...]
    test: tuple[Path, ...]


def load_people(root: Path, min_photos: int = 4) -> list[Person]:
    """Every sub-folder of ``root`` with at least ``min_photos`` images, sorted by name."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of people (one sub-folder per person)")
    people = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if len(photos) >= min_photos:
            people.append(Person(folder.name, photos))
    if len(people) < 2:
        raise ValueError(f"{root}: needs at least 2 people with {min_photos}+ photos each")
    return people


def choose_splits(
    people: list[Person], users: int, train: int, test: int, seed: int
) -> list[Split]:
    """``users`` people chosen with ``seed``; each one's photos shuffled into train and test."""
    chooser = random.Random(seed)
    chosen = chooser.sample(people, min(users, len(people)))
    splits = []
    for person in chosen:
        photos = list(person.photos)
        chooser.shuffle(photos)
        half = max(1, min(train, len(photos) // 2))
        splits.append(Split(person, tuple(photos[:half]), tuple(photos[half : half + test])))
    return splits


def other_photos(people: list[Person], per_person: int, seed: int) -> dict[str, list[Path]]:
    """Clean photos of everyone: the tracker's database of other identities (capped each)."""
    chooser = random.Random(seed + 1)
    result = {}
    for person in people:
        photos = list(person.photos)
        chooser.shuffle(photos)
        result[person.name] = photos[:per_person]
    return result

"""``ImageFolder`` as torchvision defines it (file discovery and items; no transforms beyond calls)."""

from __future__ import annotations

import os
from typing import Any, Callable

from PIL import Image

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolder:
    def __init__(self, root: str, transform: Callable | None = None, target_transform: Callable | None = None,
                 is_valid_file: Callable[[str], bool] | None = None, allow_empty: bool = False) -> None:
        self.root = os.path.expanduser(root)
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"Couldn't find any class folder in {self.root}.")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        valid = is_valid_file or (lambda path: path.lower().endswith(IMG_EXTENSIONS))
        self.samples: list[tuple[str, int]] = []
        found: set[str] = set()
        for name in self.classes:
            for folder, _, files in sorted(os.walk(os.path.join(self.root, name), followlinks=True)):
                for file in sorted(files):
                    path = os.path.join(folder, file)
                    if valid(path):
                        self.samples.append((path, self.class_to_idx[name]))
                        found.add(name)
        empty = set(self.classes) - found
        if empty and not allow_empty:
            raise FileNotFoundError(f"Found no valid file for the classes {', '.join(sorted(empty))}. ")
        self.targets = [target for _, target in self.samples]
        self.imgs = self.samples
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        with open(path, "rb") as f:
            image = Image.open(f).convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

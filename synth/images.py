"""Image sets: loading MedMNIST `.npz` files and class folders (PNG/JPEG/DICOM), splits, duplicates.

Images are kept as uint8 arrays of shape (N, H, W) (grayscale) with integer labels and class
names. Corrupt files are reported by name and refused, or skipped when asked; never trained on.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.errors import InputError

BUILTIN_PREFIX = "builtin:"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm"}
BREASTMNIST = {
    "file": "breastmnist.npz",
    "url": "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1",
    "md5": "750601b1f35ba3300ea97c75c52ff8f6",
    "classes": ["malignant", "normal_or_benign"],
}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ImageSet:
    images: np.ndarray  # (N, H, W) uint8
    labels: np.ndarray  # (N,) int64
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> "ImageSet":
        return ImageSet(self.images[rows], self.labels[rows], self.class_names)

    def save_npz(self, path: str | Path) -> Path:
        np.savez_compressed(path, images=self.images, labels=self.labels, class_names=np.array(self.class_names))
        return Path(path)

    @classmethod
    def load_npz(cls, path: str | Path) -> "ImageSet":
        with np.load(path) as data:
            return cls(data["images"], data["labels"].astype(np.int64), [str(c) for c in data["class_names"]])


def label_index(class_names: list[str], value) -> int:
    """A class given as its index or its name; a clear error for anything else."""
    if isinstance(value, str) and value in class_names:
        return class_names.index(value)
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(class_names):
        raise InputError(f"label {value!r} does not exist; labels: "
                         + ", ".join(f"{i} ({n})" for i, n in enumerate(class_names)))
    return index


def is_image_source(source: str) -> bool:
    if source.startswith(BUILTIN_PREFIX):
        return source[len(BUILTIN_PREFIX):] == "breastmnist"
    path = Path(source)
    return path.suffix.lower() == ".npz" or path.is_dir()


def load_image_splits(source: str, size: int | None = None, skip_corrupt: bool = False,
                      holdout_fraction: float = 0.3, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Train and holdout image sets. MedMNIST files keep their official split (train+val / test)."""
    if source == "builtin:breastmnist" or Path(source).suffix.lower() == ".npz":
        path = breastmnist_path() if source.startswith(BUILTIN_PREFIX) else Path(source)
        train, holdout = _medmnist_splits(path)
        if size is not None and size != train.images.shape[1]:
            train, holdout = (ImageSet(_resize_all(s.images, size), s.labels, s.class_names) for s in (train, holdout))
        return train, holdout
    if source.startswith(BUILTIN_PREFIX):
        raise InputError(f"unknown built-in image set {source[len(BUILTIN_PREFIX):]!r}; known: breastmnist")
    images = load_image_folder(Path(source), size=size, skip_corrupt=skip_corrupt)
    return split_images(images, holdout_fraction, seed)


def breastmnist_path() -> Path:
    """A local copy (SYNTHAUG_DATA_DIR, else ../shared/data beside the project), else a verified download."""
    candidates = []
    if os.environ.get("SYNTHAUG_DATA_DIR"):
        candidates.append(Path(os.environ["SYNTHAUG_DATA_DIR"]) / BREASTMNIST["file"])
    candidates.append(PROJECT_ROOT.parent / "shared" / "data" / BREASTMNIST["file"])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    try:
        import pooch

        return Path(pooch.retrieve(BREASTMNIST["url"], known_hash=f"md5:{BREASTMNIST['md5']}",
                                   fname=BREASTMNIST["file"], path=pooch.os_cache("synthaug"), progressbar=False))
    except Exception as exc:
        raise InputError(
            f"BreastMNIST not found locally and could not be downloaded ({type(exc).__name__}); put "
            f"{BREASTMNIST['file']} in the folder named by SYNTHAUG_DATA_DIR") from None


def _medmnist_splits(path: Path) -> tuple[ImageSet, ImageSet]:
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    try:
        data = np.load(path)
        parts = {split: (data[f"{split}_images"], np.asarray(data[f"{split}_labels"]).reshape(-1))
                 for split in ("train", "val", "test") if f"{split}_images" in data.files}
    except Exception as exc:
        raise InputError(f"cannot read {path} as a MedMNIST .npz file: {str(exc).splitlines()[0]}") from None
    if "train" not in parts or "test" not in parts:
        raise InputError(f"{path} lacks train_images/test_images arrays (MedMNIST layout)")
    for split, (images, labels) in parts.items():
        if images.ndim != 3 or len(images) != len(labels):
            raise InputError(f"{path}: {split}_images must be (N, H, W) grayscale with one label per image")
    train_images = np.concatenate([parts[s][0] for s in ("train", "val") if s in parts])
    train_labels = np.concatenate([parts[s][1] for s in ("train", "val") if s in parts]).astype(np.int64)
    n_classes = int(max(train_labels.max(), parts["test"][1].max())) + 1
    names = BREASTMNIST["classes"] if path.name == BREASTMNIST["file"] and n_classes == 2 else \
        [str(i) for i in range(n_classes)]
    train = ImageSet(train_images.astype(np.uint8), train_labels, names)
    holdout = ImageSet(parts["test"][0].astype(np.uint8), parts["test"][1].astype(np.int64), names)
    _check_classes(train)
    return train, holdout


def load_image_folder(folder: Path, size: int | None = None, skip_corrupt: bool = False) -> ImageSet:
    """One sub-folder per class holding PNG, JPEG or DICOM files."""
    if not folder.is_dir():
        raise InputError(f"image folder not found: {folder}")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for d in class_dirs}
    files = {name: paths for name, paths in files.items() if paths}
    if not files:
        raise InputError(f"{folder} has no class sub-folders with PNG, JPEG or DICOM files")
    images, labels, skipped, corrupt = [], [], [], []
    for label, (name, paths) in enumerate(files.items()):
        for path in paths:
            try:
                images.append(_read_image(path))
                labels.append(label)
            except Exception as exc:  # PIL and pydicom raise many types for broken files
                (skipped if skip_corrupt else corrupt).append(f"{path.relative_to(folder)} ({_reason(exc)})")
    if corrupt:
        more = f" and {len(corrupt) - 3} more" if len(corrupt) > 3 else ""
        raise InputError(f"unreadable image files: {'; '.join(corrupt[:3])}{more} (skip them with the skip-corrupt setting)")
    if not images:
        raise InputError(f"no readable images in {folder}")
    shapes = {img.shape for img in images}
    if size is None and len(shapes) > 1:
        raise InputError(f"images in {folder} have different sizes {sorted(shapes)[:4]}; set an image size to resize them")
    stacked = np.stack([_resize(img, size) if size else img for img in images])
    result = ImageSet(stacked, np.array(labels, dtype=np.int64), list(files), skipped)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image files: {'; '.join(skipped[:5])}", stacklevel=2)
    _check_classes(result)
    return result


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".dcm":
        import pydicom

        dataset = pydicom.dcmread(path)
        if "PixelData" not in dataset:
            raise ValueError("DICOM file has no pixel data")
        pixels = dataset.pixel_array.astype(np.float64)
        if pixels.ndim == 3:
            pixels = pixels.mean(axis=-1) if pixels.shape[-1] in (3, 4) else pixels[0]
        low, high = pixels.min(), pixels.max()
        return ((pixels - low) / (high - low or 1) * 255).round().astype(np.uint8)
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def _reason(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:80] or type(exc).__name__


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    return np.stack([_resize(img, size) for img in images])


def _check_classes(images: ImageSet) -> None:
    counts = np.bincount(images.labels, minlength=len(images.class_names))
    if (counts > 0).sum() < 2:
        raise InputError(f"images have a single class ({images.class_names[int(np.argmax(counts))]}); need at least two")


def split_images(images: ImageSet, holdout_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(images.labels)
    if counts[counts > 0].min() < 2 or len(images) < 10:
        raise InputError("too few images to split: every class needs at least 2 and the set at least 10")
    rows = np.arange(len(images))
    train, holdout = train_test_split(rows, test_size=holdout_fraction, random_state=seed, stratify=images.labels)
    return images.subset(np.sort(train)), images.subset(np.sort(holdout))


def cross_split_duplicates(train: ImageSet, holdout: ImageSet, near_rmse: float = 2.0) -> dict:
    """Exact and near duplicates between train and holdout (they spoil every held-out comparison).

    Near: root-mean-square pixel difference below `near_rmse` on the 0-255 scale.
    """
    from sklearn.neighbors import NearestNeighbors

    flat_train = train.images.reshape(len(train), -1).astype(np.float32)
    flat_hold = holdout.images.reshape(len(holdout), -1).astype(np.float32)
    distance, index = NearestNeighbors(n_neighbors=1).fit(flat_train).kneighbors(flat_hold)
    rmse = distance[:, 0] / np.sqrt(flat_train.shape[1])
    hashes = {hashlib.sha1(img.tobytes()).hexdigest() for img in train.images}
    exact = [i for i, img in enumerate(holdout.images) if hashlib.sha1(img.tobytes()).hexdigest() in hashes]
    near = np.flatnonzero(rmse < near_rmse)
    conflicting = [int(i) for i in near if holdout.labels[i] != train.labels[index[i, 0]]]
    return {"exact_duplicates": len(exact), "near_duplicates": int(len(near)),
            "conflicting_labels": len(conflicting),
            "pairs": [(int(index[i, 0]), int(i), float(rmse[i])) for i in near[:50]]}

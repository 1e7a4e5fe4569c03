"""SmoothGrad maps and eigendistortions for a whole folder of images, on a local cluster.

    python examples/distributed_dataset.py [OUT_DIR]

makes a folder of small synthetic images (oriented gratings with noise, no download), then
for each image, as one task of ``refimpl.distributed.map_dataset`` on two worker processes:

* the SmoothGrad map of a small seeded CNN's top class
  (``refimpl.torch.NoiseTunnel`` over ``refimpl.torch.Saliency``),
* the two most visible distortions of the image for the CNN's feature layers and their
  eigenvalues (``refimpl.torch.Eigendistortion``, randomized SVD).

Each image's results land in ``OUT_DIR/results/NNNNNN.npz``. Interrupt it (Ctrl-C) and run
it again: it computes only the images not yet done. The files are the same bytes with
``executor=None`` (one process) or any number of workers: each task's random draws come
from the key ``rng`` it is given, split into one key for the noise tunnel and one for the
eigensolver.
"""

from __future__ import annotations

import functools
import pathlib
import sys

import numpy as np

from refimpl.distributed import DatasetSummary, local_cluster, map_dataset


def make_images(folder: str | pathlib.Path, n_images: int, size: int) -> list[str]:
    """``n_images`` grey ``size`` x ``size`` images in ``folder`` (``.npy``, values in
    [0, 1]), their paths."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(2024)
    y, x = np.mgrid[0:size, 0:size] / size
    paths = []
    for i in range(n_images):
        angle, cycles = g.uniform(0, np.pi), g.uniform(2, 5)
        grating = np.sin(2 * np.pi * cycles * (x * np.cos(angle) + y * np.sin(angle)))
        image = np.clip(0.5 + 0.4 * grating + 0.05 * g.standard_normal((size, size)), 0, 1)
        path = folder / f"image{i:03d}.npy"
        np.save(path, image.astype(np.float32))
        paths.append(str(path))
    return paths


@functools.cache
def cnn():
    """A small CNN (2 conv layers, 3 classes) with weights drawn from a fixed seed, made once
    per worker process. ``features`` is its convolutional part."""
    import torch

    features = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.Softplus(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.Softplus(),
    )
    model = torch.nn.Sequential(
        features, torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 3)
    )
    g = np.random.default_rng(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(g.normal(0, 0.5, size=tuple(p.shape)).astype(np.float32)))
    return model.eval(), features.eval()


def explain(path: str, rng: np.random.SeedSequence) -> dict:
    """One image's SmoothGrad map and top-2 eigendistortions (the task ``map_dataset`` runs)."""
    import torch

    from refimpl.torch import Eigendistortion, NoiseTunnel, Saliency

    model, features = cnn()
    image = torch.from_numpy(np.load(path))[None, None]  # (1, 1, H, W)
    target = int(model(image).argmax())
    noise_key, solver_key = rng.spawn(2)  # one key per random computation
    smoothgrad = NoiseTunnel(Saliency(model)).attribute(
        image, nt_type="smoothgrad", nt_samples=8, stdevs=0.1, target=target,
        rng=noise_key, progress=False,
    )  # fmt: skip
    eig = Eigendistortion(image, features)
    eig.synthesize(method="randomized_svd", k=2, rng=solver_key, progress=False)
    return {
        "target": target,
        "smoothgrad": smoothgrad[0],
        "eigenvalues": eig.eigenvalues,
        "eigendistortions": eig.eigendistortions,
    }


def run(
    out_dir: str | pathlib.Path,
    *,
    n_images: int = 16,
    size: int = 32,
    executor=None,
    images_dir: str | pathlib.Path | None = None,
    progress: bool | None = None,
) -> DatasetSummary:
    """Make the images (in ``images_dir``, default ``out_dir/images``) and explain each one
    into ``out_dir/results`` with ``map_dataset``."""
    out_dir = pathlib.Path(out_dir)
    images = make_images(images_dir or out_dir / "images", n_images, size)
    return map_dataset(
        explain, images, out_dir / "results", executor=executor, seed=0, progress=progress
    )


def main(argv: list[str]) -> int:
    out_dir = argv[0] if argv else "distributed_dataset_out"
    with local_cluster(n_workers=2) as client:
        summary = run(out_dir, executor=client.get_executor(), progress=True)
    print(
        f"{len(summary)} images: {len(summary.computed)} computed, "
        f"{len(summary.skipped)} already done; results in {summary.out_dir}"
    )
    first = summary.load(0)
    print(f"image 0: class {int(first['target'])}, eigenvalues {first['eigenvalues']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

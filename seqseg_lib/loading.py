"""What the engine reads batches with: the seeded order of each epoch (resumable mid-epoch,
shared among processes), items made with their own epoch (``EpochItems``: DataLoader workers
persist for a whole run), and in-order evaluation batches (each process its contiguous share).
"""

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from seqseg_lib import distributed
from seqseg_lib.config import Config
from seqseg_lib.experiments.base import Experiment


def prepare(dataset: Dataset) -> None:
    """Load what a dataset caches (rendered scenes, the memory-mapped cache of resized files)
    once, in this process, where it has a ``prepare`` method."""
    if hasattr(dataset, "prepare"):
        dataset.prepare()


class EpochSampler(Sampler[int]):
    """A permutation seeded by ``(seed, epoch)``, started at ``start`` (to resume mid-epoch).

    Under several processes, this process's share of each global batch of ``batch_size``
    (``distributed.shard_batches``), ``start`` counted in its own items.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        batch_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(size, generator=generator).tolist()
        if distributed.world_size() > 1:
            order = distributed.shard_batches(order, batch_size, drop_last)
        self.order = order[start:]

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def epoch_steps(size: int, batch_size: int, drop_last: bool, processes: int = 1) -> int:
    """Optimiser steps in an epoch of ``size`` training items, as ``TrainOrder`` and the
    engine's DataLoader batch them: the whole batches of ``batch_size``, and a last partial one
    unless ``drop_last`` or, under several processes, it has fewer items than processes (each
    needs one: ``distributed.shard_batches``)."""
    whole, rest = divmod(size, batch_size)
    return whole + int(rest > 0 and not drop_last and rest >= processes)


class TrainOrder(Sampler[tuple[int, int]]):
    """``(epoch, index)`` pairs of the current epoch's ``EpochSampler``; ``set_position`` moves
    it to another epoch or start. One DataLoader then serves every epoch of a run, so that its
    workers persist (forked once, not at every epoch)."""

    def __init__(self, size: int, seed: int, batch_size: int, drop_last: bool) -> None:
        self.size, self.seed, self.batch_size, self.drop_last = size, seed, batch_size, drop_last
        self.set_position(0, 0)

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch = epoch
        self.order = EpochSampler(
            self.size, self.seed, epoch, start, self.batch_size, self.drop_last
        )

    def __iter__(self):
        return ((self.epoch, index) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)


class EpochItems(Dataset):
    """``dataset`` read by ``(epoch, index)`` pairs: each item is made with the epoch that asks
    for it (``dataset.set_epoch``), in whichever process makes it; persistent workers hold
    copies of the dataset that the main process's ``set_epoch`` never reaches."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def loader_generator(seed: int, epoch: int) -> torch.Generator:
    """A DataLoader draws its workers' base seed when an iterator starts; from its own
    generator, that draw leaves the global RNG (dropout) alone, so resuming does not shift it."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch + 7)


def evaluation_loader(
    experiment: Experiment, config: Config, dataset: Dataset, persistent: bool = False
) -> DataLoader:
    """Batches of ``dataset`` in order, this process's contiguous share of it under several
    processes; ``persistent`` keeps its workers between passes."""
    world, rank = distributed.world_size(), distributed.rank()
    share = range(len(dataset) * rank // world, len(dataset) * (rank + 1) // world)
    return DataLoader(
        dataset if world == 1 else Subset(dataset, share),
        batch_size=config.batch_size,
        collate_fn=experiment.collate_fn,
        num_workers=config.num_workers,
        persistent_workers=persistent and config.num_workers > 0,
        generator=loader_generator(config.seed, -1),
    )

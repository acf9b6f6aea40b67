import sample
import torch


def test_einops_cuts_patches():
    images = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    patches = sample.patches_of(images)
    assert patches.shape == (2, 16, 16)
    assert torch.equal(patches[0, 0], images[0, 0, :4, :4].reshape(-1))


def test_the_model_learns():
    first, last = sample.train()
    assert last < 0.5 * first, (first, last)

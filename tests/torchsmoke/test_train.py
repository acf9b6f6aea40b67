"""What the training checks share (torchsmoke.train): seeded, learnable data; the small models;
the training loop."""

from __future__ import annotations

import torch

from torchsmoke import train


def test_the_same_seed_gives_the_same_data():
    a = train.prototype_data(torch.Generator().manual_seed(3), 50, 20)
    b = train.prototype_data(torch.Generator().manual_seed(3), 50, 20)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in vars(a))
    assert a.x_train.shape == (50, train.MLP_DIM) and a.x_test.shape == (20, train.MLP_DIM)


def test_shape_images_hold_one_of_the_shapes():
    data = train.shape_images(torch.Generator().manual_seed(0), 40, 10, size=16)
    assert data.x_train.shape == (40, 1, 16, 16) and data.y_test.shape == (10,)
    assert set(data.y_train.tolist()) <= set(range(len(train.SHAPES)))
    assert train.SmallCNN()(data.x_test).shape == (10, len(train.SHAPES))


def test_fit_learns_the_prototypes():
    gen = torch.Generator().manual_seed(0)
    data = train.prototype_data(gen, 1000, 500, spread=0.2)
    torch.manual_seed(0)
    model = train.make_mlp()
    seen = []
    losses = train.fit(
        model, data, steps=60, batch_size=64, lr=2e-3, gen=gen,
        on_loss=lambda step, loss, m: seen.append(step),
    )  # fmt: skip
    assert len(losses) == 60 and seen == list(range(60))
    assert sum(losses[-10:]) < sum(losses[:10])
    assert train.accuracy(model, data.x_test, data.y_test) > 0.5

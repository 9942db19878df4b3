from __future__ import annotations

import pytest

from zoo.plots import _whole_epochs


@pytest.mark.parametrize("epochs", [[1], [1, 2, 3], list(range(1, 23))])
def test_epoch_axes_tick_whole_epochs_only(epochs: list[int]) -> None:
    """A 1-epoch run's curve got ticks at 0.96, 0.98, ... 1.04; epochs are whole numbers."""
    from matplotlib.figure import Figure

    axes = Figure().subplots()
    axes.plot(epochs, [0.5] * len(epochs), "o-")
    _whole_epochs(axes)
    ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks) and (len(epochs) > 5 or 1 in ticks)

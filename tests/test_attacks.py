"""FoolingAttack drops into scripts written for torchattacks."""
import pytest
import torch

from evofool.attacks import FoolingAttack
from evofool.errors import EvofoolError
from evofool.fitness.lenet import MNIST_MEAN, MNIST_STD, load_lenet
from evofool.fitness.mnist_data import read_idx_images, read_idx_labels
from conftest import real_mnist_dir


class Normalized(torch.nn.Module):
    """The shipped LeNet as torchattacks wants models: [0, 1] pixels in, logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.net = load_lenet().eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - MNIST_MEAN[0]) / MNIST_STD[0])


def robust_accuracy(attack, model, images, labels, targets=None):
    """An evaluation loop as written for torchattacks: attack, then classify."""
    adversarial = attack(images, labels if targets is None else targets)
    with torch.no_grad():
        predicted = model(adversarial).argmax(1)
    return adversarial, predicted


@pytest.fixture(scope="module")
def digits():
    folder = real_mnist_dir("FoolingAttack on MNIST digits")
    images = read_idx_images(folder / "t10k-images-idx3-ubyte.gz")[:8]
    labels = read_idx_labels(folder / "t10k-labels-idx1-ubyte.gz")[:8]
    return torch.from_numpy(images).float()[:, None] / 255, torch.from_numpy(labels).long()


@pytest.mark.mnist_data
def test_untargeted_attack_on_a_batch_of_mnist_digits(digits):
    images, labels = digits
    model = Normalized()
    attack = FoolingAttack(model, eps=0.3, norm="Linf", queries=1000, seed=0)
    adversarial, predicted = robust_accuracy(attack, model, images, labels)
    assert adversarial.shape == images.shape and adversarial.dtype == images.dtype
    assert (adversarial - images).abs().max() <= 0.3 + 1e-6
    assert torch.equal(adversarial * 255, (adversarial * 255).round())  # 8-bit, as a PNG
    assert torch.equal(attack.success, predicted != labels)  # success means misclassified
    assert attack.success.float().mean() >= 0.75
    assert ((attack.queries >= 1) & (attack.queries <= 1000)).all()
    again = FoolingAttack(model, eps=0.3, queries=1000, seed=0)(images, labels)
    assert torch.equal(again, adversarial)  # one seed, the same images


@pytest.mark.mnist_data
@pytest.mark.long
def test_targeted_attack_by_label_and_by_function(digits):
    images, labels = digits
    model = Normalized()
    targets = (labels + 1) % 10
    attack = FoolingAttack(model, eps=0.3, queries=2000, seed=1)
    attack.set_mode_targeted_by_label()
    adversarial, predicted = robust_accuracy(attack, model, images, labels, targets)
    assert torch.equal(attack.success, predicted == targets)
    assert attack.success.float().mean() >= 0.5
    by_function = FoolingAttack(model, eps=0.3, queries=2000, seed=1)
    by_function.set_mode_targeted_by_function(lambda images, labels: (labels + 1) % 10)
    assert torch.equal(by_function(images, labels), adversarial)


def test_normalization_and_l2_on_a_tiny_model():
    """set_normalization_used as in torchattacks; an L2 ball is kept."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    images = torch.rand(3, 3, 8, 8).mul(255).round().div(255)
    with torch.no_grad():
        labels = model((images - 0.5) / 0.25).argmax(1)
    attack = FoolingAttack(model, eps=1.0, norm="L2", queries=300, population=6, seed=2)
    attack.set_normalization_used(mean=[0.5] * 3, std=[0.25] * 3)
    adversarial = attack(images, labels)
    assert (adversarial - images).flatten(1).norm(dim=1).max() <= 1.0 + 1e-6
    with torch.no_grad():
        predicted = model((adversarial - 0.5) / 0.25).argmax(1)
    assert torch.equal(attack.success, predicted != labels) and attack.success.any()


def test_wrong_inputs_are_one_line():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with pytest.raises(EvofoolError, match="norm 'l1'"):
        FoolingAttack(model, norm="L1")
    with pytest.raises(EvofoolError, match=r"pixels in \[0, 1\]"):
        FoolingAttack(model)(torch.full((1, 1, 4, 4), 2.0), torch.tensor([0]))


def test_torchattacks_and_fooling_attack_run_in_the_same_loop():
    torchattacks = pytest.importorskip("torchattacks", reason="the attacks extra "
                                       "(pip install torchattacks) is not installed")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()
    images = torch.rand(2, 1, 8, 8)
    labels = torch.tensor([0, 1])
    for attack in (torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=5),
                   FoolingAttack(model, eps=0.1, queries=50, population=5)):
        adversarial, _ = robust_accuracy(attack, model, images, labels)
        assert adversarial.shape == images.shape
        assert float((adversarial - images).abs().max()) <= 0.1 + 1 / 255
    assert ((attack.queries >= 1) & (attack.queries <= 50)).all()  # within its budget


def test_a_torchattacks_style_model_is_the_target_of_an_experiment(tmp_path, monkeypatch):
    """A model that takes [0, 1] pixels (normalization inside) serves a whole run through a
    python: factory returning target_from_model."""
    from evofool.config import load_experiment
    from evofool.runner import run_experiment
    from conftest import small_experiment
    (tmp_path / "attack_models.py").write_text(
        "from evofool.attacks import target_from_model\n"
        "from test_attacks import Normalized\n"
        "def lenet():\n"
        "    return target_from_model(Normalized(), 1, (28, 28), name='lenet-0-1')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = small_experiment(tmp_path, model="python:attack_models:lenet",
                            budget={"generations": 2})
    result = run_experiment(load_experiment(path))
    (tmp_path / "shipped").mkdir()
    shipped = small_experiment(tmp_path / "shipped", budget={"generations": 2})
    same = run_experiment(load_experiment(shipped))
    # the same LeNet, normalized inside or by evofool: the same search, the same confidences
    assert ([row["confidence"] for row in result.archive_json["classes"]]
            == pytest.approx([row["confidence"] for row in same.archive_json["classes"]]))

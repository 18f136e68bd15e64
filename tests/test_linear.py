"""The linear baseline: SGD on our losses agrees with scikit-learn's LinearSVC and with closed-form ridge."""
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.svm import LinearSVC

from cnnlab.errors import ConfigError
from cnnlab.losses import CrossEntropy, MulticlassHinge, SquaredError, ridge_closed_form
from cnnlab.models.linear import LinearClassifier


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one intra-op thread avoids oversubscription stalls on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def three_classes(n_train: int = 400, n_test: int = 1000, dim: int = 20):
    x, y = make_classification(n_samples=n_train + n_test, n_features=dim, n_informative=8, n_classes=3,
                               n_clusters_per_class=1, class_sep=1.0, random_state=0)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def train_full_batch(model, loss_fn, x, y, lam, steps, lr, decay_every=None):
    """Gradient descent as run.py configures it: weight decay lam on the weight matrix only, never the bias."""
    opt = torch.optim.SGD([{"params": [model.linear.weight], "weight_decay": lam},
                           {"params": [model.linear.bias], "weight_decay": 0.0}], lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (1 + k / decay_every) if decay_every else 1.0)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()
    return model


def test_ovr_hinge_sgd_matches_sklearn_linear_svc():
    xtr, ytr, xte, yte = three_classes()
    lam = 0.01
    # (1/n) sum hinge + lam/2 |w|^2  <=>  1/2 |w|^2 + C sum hinge with C = 1/(lam n); a large intercept_scaling
    # makes liblinear's penalty on the bias negligible, as ours is zero.
    svc = LinearSVC(loss="hinge", C=1 / (lam * len(xtr)), intercept_scaling=10, max_iter=100_000, tol=1e-5)
    svc.fit(xtr.numpy(), ytr.numpy())
    acc_sklearn = (torch.tensor(svc.predict(xte.numpy())) == yte).float().mean().item()
    model = train_full_batch(LinearClassifier(20, 3), MulticlassHinge("ovr"), xtr, ytr, lam, 600, 0.5, 30)
    acc_ours = (model(xte).argmax(1) == yte).float().mean().item()
    assert acc_sklearn > 0.8
    assert abs(acc_ours - acc_sklearn) <= 0.01
    assert torch.allclose(model.linear.weight.detach(), torch.tensor(svc.coef_, dtype=torch.float32), atol=0.02)


def test_least_squares_gradient_descent_matches_closed_form():
    xtr, ytr, _, _ = three_classes(n_train=300, n_test=1, dim=10)
    lam = 0.1
    w, b = ridge_closed_form(xtr, ytr, lam, num_classes=3)
    model = train_full_batch(LinearClassifier(10, 3), SquaredError(), xtr, ytr, lam, 800, 0.05)
    assert torch.allclose(model.linear.weight.detach(), w, atol=1e-4)
    assert torch.allclose(model.linear.bias.detach(), b, atol=1e-4)
    # the closed form is a stationary point of the objective it claims to minimise
    w_, b_ = w.clone().requires_grad_(), b.clone().requires_grad_()
    objective = SquaredError()(xtr @ w_.T + b_, ytr) + lam / 2 * w_.pow(2).sum()
    objective.backward()
    assert w_.grad.abs().max() < 1e-4 and b_.grad.abs().max() < 1e-4


def test_crammer_singer_hand_computed():
    scores = torch.tensor([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
    target = torch.tensor([0, 2])
    # sample 0: max(0, 1 + 1.5 - 2) = 0.5;  sample 1: max(0, 1 + 3 - 0.5) = 3.5;  mean 2.0
    assert MulticlassHinge("crammer_singer")(scores, target).item() == pytest.approx(2.0)
    assert MulticlassHinge("crammer_singer", margin=0.4)(scores, target).item() == pytest.approx((0 + 2.9) / 2)


def test_ovr_hinge_and_squared_error_hand_computed():
    scores = torch.tensor([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
    target = torch.tensor([0, 2])
    # sample 0: [1-2]+ + [1+1.5]+ + [1-1]+ = 2.5;  sample 1: [1+0]+ + [1+3]+ + [1-0.5]+ = 5.5
    assert MulticlassHinge("ovr")(scores, target).item() == pytest.approx(4.0)
    # sample 0: 1 + 2.25 + 1 = 4.25;  sample 1: 0 + 9 + 0.25 = 9.25
    assert SquaredError()(scores, target).item() == pytest.approx(6.75)
    with pytest.raises(ConfigError, match="loss.kind"):
        MulticlassHinge("weston_watkins")


def test_linear_classifier_starts_at_zero_and_flattens():
    model = LinearClassifier(in_features=12, num_classes=4)
    assert model(torch.rand(5, 3, 2, 2)).shape == (5, 4)
    assert model.linear.weight.abs().sum() == 0 and model.linear.bias.abs().sum() == 0
    assert LinearClassifier(12, 4, bias=False, init_std=0.01).linear.bias is None


def test_class_weights_give_the_weighted_mean_and_balanced_needs_counts():
    scores = torch.tensor([[2.0, -1.0], [0.5, 0.0], [-1.0, 1.0]])
    target = torch.tensor([0, 1, 1])
    ref = torch.nn.functional.cross_entropy(scores, target, weight=torch.tensor([1.0, 3.0]))
    assert CrossEntropy(weight=[1.0, 3.0])(scores, target).item() == pytest.approx(ref.item())
    assert CrossEntropy()(scores, target).item() == pytest.approx(
        torch.nn.functional.cross_entropy(scores, target).item())
    per_sample = torch.relu(1 - (torch.nn.functional.one_hot(target, 2) * 2 - 1) * scores).sum(1)
    expected = (1 * per_sample[0] + 3 * per_sample[1] + 3 * per_sample[2]) / 7
    assert MulticlassHinge("ovr", weight=[1, 3])(scores, target).item() == pytest.approx(expected.item())
    assert SquaredError(weight=[1, 1])(scores, target).item() == pytest.approx(SquaredError()(scores, target).item())
    balanced = CrossEntropy(weight="balanced", class_counts=[74, 26]).weight
    assert torch.allclose(balanced, torch.tensor([100 / 148, 100 / 52]))  # n / (K n_k), sklearn's "balanced"
    with pytest.raises(ConfigError, match="class counts"):
        CrossEntropy(weight="balanced")
    with pytest.raises(ConfigError, match="one non-negative weight per class"):
        MulticlassHinge(weight=[1.0, -2.0])


@pytest.mark.parametrize("experiment", ["svm_features_digits", "svm_features_mnist", "svm_features_cifar10",
                                        "svm_patches_roads", "logreg_patches_roads", "lsq_features_digits",
                                        "svm_patches_mito"])
def test_issue5_experiments_compose_and_build_their_loss(experiment):
    from hydra.utils import instantiate

    from conftest import compose_cfg

    cfg = compose_cfg([f"experiment={experiment}"])
    assert cfg.name == experiment and cfg.model._target_.endswith("LinearClassifier")
    assert isinstance(instantiate(cfg.loss), (MulticlassHinge, SquaredError, CrossEntropy))
    if "digits" not in experiment:  # one override for the data folder, as for the image experiments
        cfg = compose_cfg([f"experiment={experiment}", "data.root=/somewhere"])
        assert cfg.data.root == "/somewhere"


def test_loss_kind_and_crammer_singer_option_agree():
    from hydra.utils import instantiate

    from conftest import compose_cfg

    a = instantiate(compose_cfg(["experiment=svm_features_digits", "loss.kind=crammer_singer"]).loss)
    b = instantiate(compose_cfg(["experiment=svm_features_digits", "loss=crammer_singer"]).loss)
    assert a.kind == b.kind == "crammer_singer"


def test_svm_on_digit_features_trains_end_to_end(tmp_path):
    """The shared loop with model=linear on cached HOG features of the bundled digits (offline, a few seconds)."""
    import json

    from conftest import run_train

    run_dir, _ = run_train(tmp_path, ["experiment=svm_features_digits", f"paths.data_dir={tmp_path}/data",
                                      "trainer.epochs=3", "trainer.tensorboard=false"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["experiment"] == "svm_features_digits" and results["loss"] == "hinge"
    assert results["test/acc"] > 0.9  # HOG + linear SVM separates the digits well
    assert len(list((tmp_path / "data" / "feature_cache").glob("digits-features-*.pt"))) == 1


def test_svm_on_cifar10_features_runs_from_data_root(tmp_path):
    """svm_features_cifar10 on CIFAR-10 pickles in the official layout (written by the CIFAR tests' helper)."""
    import json

    from conftest import run_train
    from fakes import write_cifar

    write_cifar(tmp_path / "cifar", per_batch=20)
    run_dir, _ = run_train(tmp_path, ["experiment=svm_features_cifar10", f"data.root={tmp_path}/cifar",
                                      "data.source.val_size=20", f"paths.data_dir={tmp_path}/data",
                                      "trainer.epochs=1", "trainer.tensorboard=false"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["experiment"] == "svm_features_cifar10" and 0.0 <= results["test/acc"] <= 1.0
    assert len(list((tmp_path / "data" / "feature_cache").glob("cifar10-features-*.pt"))) == 1


def test_svm_through_the_shared_loop_matches_linear_svc_on_digits_hog(tmp_path):
    """Issue 5's check: the same HOG + histogram features, our SGD-trained SVM vs liblinear, within a point."""
    import json

    import numpy as np
    from hydra.utils import instantiate
    from sklearn.svm import LinearSVC

    from conftest import compose_cfg, run_train

    overrides = ["experiment=svm_features_digits", f"paths.data_dir={tmp_path / 'data'}", "trainer.tensorboard=false",
                 "trainer.pictures_every=0"]
    run_dir, _ = run_train(tmp_path, overrides)
    ours = json.loads((run_dir / "results.json").read_text())["test/acc"]
    cfg = compose_cfg(overrides)
    bundle = instantiate(cfg.data)  # the cached features the run trained on
    lam, n = cfg.optim.weight_decay, len(bundle.train)
    svc = LinearSVC(loss="hinge", C=1.0 / (lam * n), max_iter=200_000, intercept_scaling=10)
    svc.fit(bundle.train.inputs.numpy(), bundle.train.targets.numpy())
    theirs = float(np.mean(svc.predict(bundle.test.inputs.numpy()) == bundle.test.targets.numpy()))
    print(f"SGD hinge {ours:.4f} vs LinearSVC {theirs:.4f}")
    assert abs(ours - theirs) <= 0.01, (ours, theirs)

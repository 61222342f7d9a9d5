"""A genome type defined outside the package joins through the documented routes, with no
edit to the package: a dotted path in the YAML, or an ``evofool.genomes`` entry point."""
import pytest

from evofool.archive_store import export_archive, load_archive
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.genomes.contract import check_genome_type
from evofool.genomes.registry import available_genome_types, get_genome_type
from evofool.plugins import trusting_artifacts
from evofool.runner import run_experiment
from conftest import small_experiment
from plugin_genomes import StripesGenome


def test_plugin_keeps_the_genome_contract():
    check_genome_type(StripesGenome)


def test_map_elites_runs_a_plugin_named_by_dotted_path(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "plugin_genomes:StripesGenome",
                                              "sigma": 0.2})
    result = run_experiment(load_experiment(path))
    with pytest.raises(EvofoolError, match="plugin_genomes:StripesGenome', a module path"):
        load_archive(tmp_path / "run")  # an archive is an artifact: its module path needs trust
    with trusting_artifacts():
        archive, genome_type, _ = load_archive(tmp_path / "run")
        assert len(export_archive(tmp_path / "run", tmp_path / "out")) == 11
    # the plugin's own mutate drove the search: elites come from later generations too
    assert result.archive_json["summary"]["median"] > 0.1 and archive.generation.max() > 0
    assert isinstance(genome_type, StripesGenome) and genome_type.params.sigma == 0.2


def test_plugin_options_are_validated_like_built_in_ones(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "plugin_genomes:StripesGenome",
                                              "sigma": "wide"})
    with pytest.raises(EvofoolError, match="genome.sigma = 'wide' is invalid"):
        load_experiment(path)


def test_entry_point_makes_a_plugin_available_by_name(tmp_path, monkeypatch):
    dist = tmp_path / "stripes_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: stripes-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[evofool.genomes]\nstripes = plugin_genomes:StripesGenome\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "stripes" in available_genome_types()
    assert get_genome_type("stripes") is StripesGenome
    path = small_experiment(tmp_path, genome={"type": "stripes"})
    _, genome_type, _ = load_archive(run_experiment(load_experiment(path)).run_dir)
    assert isinstance(genome_type, StripesGenome)

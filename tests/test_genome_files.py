"""One genome JSON file format for every genome type: direct pixels, CPPN graphs and plugins
round-trip exactly, old CPPN files still load, and bad files are one-line errors."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from evofool.errors import EvofoolError
from evofool.genomes.cppn import CppnGenome, CppnParams, genome_to_json
from evofool.genomes.direct import DirectGenome, DirectParams
from evofool.plugins import trusting_artifacts
from evofool.render import load_genome_json, render_to_png, save_genome_json
from plugin_genomes import StripesGenome, StripesParams


def direct():
    genome_type = DirectGenome(DirectParams(channels=3, size=10), 1, (28, 28))
    return genome_type, "direct", genome_type.random(3, np.random.default_rng(0))


def cppn():
    genome_type = CppnGenome(CppnParams(), 1, (28, 28))
    rng = np.random.default_rng(1)
    population = genome_type.random(3, rng)
    for _ in range(15):
        population = genome_type.mutate(population, rng, generation=1)
    return genome_type, "cppn", population


def stripes():
    genome_type = StripesGenome(StripesParams(sigma=0.2), 1, (16, 16))
    population = genome_type.random(3, np.random.default_rng(2))
    return genome_type, "plugin_genomes:StripesGenome", population


@pytest.mark.parametrize("make", [direct, cppn, stripes])
def test_every_genome_type_round_trips_through_a_genome_file(tmp_path, make):
    genome_type, name, population = make()
    path = tmp_path / "genome.json"
    params = dataclasses.asdict(genome_type.params)
    assert save_genome_json(path, genome_type, name, params, population[1]) == path
    content = json.loads(path.read_text())
    assert content["format_version"] == 2 and content["genome"]["type"] == name
    assert content["image"] == {"channels": genome_type.channels, "size": list(genome_type.size)}

    with trusting_artifacts():  # the plugin is named by a module path: code from the file
        loaded_type, loaded = load_genome_json(path)
    assert type(loaded_type) is type(genome_type) and loaded_type.params == genome_type.params
    assert len(loaded) == 1
    assert torch.equal(loaded_type.render(loaded), genome_type.render(population[1:2]))
    if population.dtype != object:  # arrays come back bit for bit, dtype included
        assert loaded.dtype == population.dtype and np.array_equal(loaded, population[1:2])


def test_a_cppn_genome_file_holds_the_readable_graph(tmp_path):
    genome_type, name, population = cppn()
    save_genome_json(tmp_path / "g.json", genome_type, name, {"type": "cppn"}, population[0])
    data = json.loads((tmp_path / "g.json").read_text())["genome_data"]
    assert data == genome_to_json(population[0]) and {"nodes", "edges"} <= set(data)


def test_a_direct_genome_file_holds_its_pixels_as_a_typed_array(tmp_path):
    genome_type, name, population = direct()
    save_genome_json(tmp_path / "g.json", genome_type, name, {"channels": 3, "size": 10},
                     population[0])
    data = json.loads((tmp_path / "g.json").read_text())["genome_data"]
    assert data["pixels"]["dtype"] == "float32" and data["pixels"]["shape"] == [1, 3, 10, 10]
    assert len(data["pixels"]["data"]) == 300


def test_a_format_1_cppn_file_still_loads(tmp_path):
    genome_type, _, population = cppn()
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format_version": 1, "genome": {"type": "cppn"},
                                "image": {"channels": 1, "size": [28, 28]},
                                "graph": genome_to_json(population[2])}))
    loaded_type, loaded = load_genome_json(path)
    assert torch.equal(loaded_type.render(loaded), genome_type.render(population[2:3]))
    render_to_png(path, tmp_path / "old.png", 56)
    assert (tmp_path / "old.png").is_file()


def bad_direct_data():
    """genome_data for a 1-channel 4 x 4 direct genome, each wrong in one way."""
    def pixels(**change):
        entry = {"dtype": "float32", "shape": [1, 1, 4, 4], "data": [0.5] * 16}
        entry.update(change)
        return {"pixels": entry}
    return {
        "not_an_object": [0.5] * 16,
        "empty": {},
        "missing_key": {"pixels": {"dtype": "float32", "shape": [1, 1, 4, 4]}},
        "object_dtype": pixels(dtype="object"),
        "complex_dtype": pixels(dtype="complex128"),
        "unknown_dtype": pixels(dtype="float99"),
        "dtype_not_a_string": pixels(dtype=5),
        "shape_not_a_list": pixels(shape="1x1x4x4"),
        "negative_shape": pixels(shape=[1, 1, -4, -4]),
        "size_mismatch": pixels(data=[0.5] * 15),
        "strings": pixels(data=["0.5"] * 16),
        "nulls": pixels(data=[None] * 16),
        "booleans": pixels(data=[True] * 16),
        "nested": pixels(shape=[1, 1, 4, 2], data=[[0.5, 0.5]] * 8),
        "oversized": pixels(shape=[100000, 100000, 10]),
        "wrong_shape_for_the_type": pixels(shape=[1, 1, 2, 8]),
        "out_of_range_pixels": pixels(data=[2.0] * 16),
        "two_genomes": pixels(shape=[2, 1, 4, 4], data=[0.5] * 32),
        "integers_too_big": pixels(dtype="uint8", data=[300] * 16),
        "other_array_name": {"genes": pixels()["pixels"]},
    }


def test_malformed_genome_files_are_one_line_errors_naming_the_file(tmp_path):
    header = {"format_version": 2, "genome": {"type": "direct"},
              "image": {"channels": 1, "size": [4, 4]}}
    files = {name: json.dumps({**header, "genome_data": data})
             for name, data in bad_direct_data().items()}
    files["nan"] = json.dumps({**header, "genome_data": {"pixels": {
        "dtype": "float32", "shape": [1, 1, 4, 4], "data": [float("nan")] * 16}}})
    files["future_version"] = json.dumps({**header, "format_version": 3, "genome_data": {}})
    files["version_1_without_graph"] = json.dumps({**header, "format_version": 1,
                                                   "genome_data": {}})
    files["no_data"] = json.dumps(header)
    files["not_json"] = "{not json"
    files["unknown_type"] = json.dumps({**header, "genome": {"type": "nope"}, "genome_data": {}})
    files["bad_graph"] = json.dumps({**header, "genome": {"type": "cppn"},
                                     "genome_data": {"nodes": [], "edges": []}})
    for name, text in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(EvofoolError) as error:
            load_genome_json(path)
        message = str(error.value)
        assert str(path) in message and "\n" not in message, (name, message)


def test_the_size_limit_refuses_before_reading_the_data():
    genome_type = DirectGenome(DirectParams(), 1, (4, 4))
    data = genome_type.to_json(genome_type.random(1, np.random.default_rng(0))[0])
    assert len(genome_type.from_json(data, max_elements=16)) == 1
    with pytest.raises(ValueError, match="more than 15 numbers"):
        genome_type.from_json(data, max_elements=15)


def test_a_genome_that_cannot_be_saved_is_a_one_line_error_naming_the_file(tmp_path):
    genome_type, name, population = cppn()
    broken = population[0].copy()
    broken.remove_node("out0")
    path = tmp_path / "broken.json"
    with pytest.raises(EvofoolError) as error:
        save_genome_json(path, genome_type, name, {}, broken)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert not path.exists()

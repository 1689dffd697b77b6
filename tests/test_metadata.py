import pytest

from fmca_rt.metadata import METADATA_KEY, MetadataError, ModelMetadata
from training import PRESETS


def test_metadata_round_trips_through_onnx_props():
    meta = ModelMetadata(PRESETS["b14"].to_dict(), source_sha256="00ff")
    props = meta.to_onnx_props()
    assert list(props) == [METADATA_KEY]
    assert ModelMetadata.from_onnx_props(props) == meta
    assert meta.image_size == 224 and meta.class_names == ("real", "fake")
    assert meta.preprocessing == "pil-bilinear"


def test_missing_newer_or_garbled_metadata_is_one_clear_error():
    with pytest.raises(MetadataError, match="has no fmca-rt metadata"):
        ModelMetadata.from_onnx_props({})
    with pytest.raises(MetadataError, match="newer fmca-rt"):
        ModelMetadata.from_json('{"config": {}, "schema_version": 99}')
    with pytest.raises(MetadataError, match="unreadable"):
        ModelMetadata.from_json("{not json")

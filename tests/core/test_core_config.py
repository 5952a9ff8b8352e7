import pytest

from machinima.config import load_config
from machinima.errors import ConfigError


def test_precedence_file_env_flags(tmp_path):
    (tmp_path / "machinima.toml").write_text('takes_root = "t"\nproduction = "film"\nfps = "25"\n[server]\nport = 9000\nhost = "0.0.0.0"\n')
    cfg = load_config(tmp_path, env={})
    assert cfg.takes_root == tmp_path / "t" and cfg.production == "film" and cfg.section("server")["port"] == 9000
    cfg = load_config(tmp_path, env={"MACHINIMA_PRODUCTION": "other", "MACHINIMA_SERVER__PORT": "9100"})
    assert cfg.production == "other" and cfg.section("server") == {"port": 9100, "host": "0.0.0.0"}
    cfg = load_config(tmp_path, env={"MACHINIMA_PRODUCTION": "other"}, overrides={"production": "flag", "server.port": 1})
    assert cfg.production == "flag" and cfg.section("server")["port"] == 1
    assert load_config(tmp_path / "nowhere", env={}).takes_root.name == "takes"


def test_bad_config_files(tmp_path):
    (tmp_path / "machinima.toml").write_text("takes_root = \n")
    with pytest.raises(ConfigError, match="machinima.toml"):
        load_config(tmp_path, env={})
    (tmp_path / "machinima.toml").write_text('take_root = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(tmp_path, env={})


def test_missing_model_says_where(tmp_path):
    cfg = load_config(tmp_path, env={})
    with pytest.raises(ConfigError, match=r"SD 1.5 base model not found at .*models/sd15.*put it there: a diffusers folder"):
        cfg.model_path("sd15", what="SD 1.5 base model", expect="a diffusers folder with model_index.json")
    (tmp_path / "models" / "sd15").mkdir(parents=True)
    assert cfg.model_path("sd15", what="x") == tmp_path / "models" / "sd15"

"""The worker command line for one process and for a torchrun group."""

import pytest

from engine.errors import UserError
from engine.launch.command import GroupShape, worker_command


def test_one_process_is_the_plain_worker() -> None:
    command = worker_command("r1", "ws", GroupShape())
    assert command[1:] == ["-m", "engine.worker", "r1", "--workspace", "ws"]


def test_group_goes_through_torchrun() -> None:
    command = worker_command("r1", "ws", GroupShape(nproc_per_node=2))
    assert command[1:8] == ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--max-restarts", "0",
                            "--standalone"]
    two = worker_command("r1", "ws", GroupShape(2, 2, 1, "host", 1234))
    assert ["--nnodes", "2", "--node-rank", "1", "--master-addr", "host", "--master-port", "1234"] == two[7:15]


def test_shape_from_the_config_section() -> None:
    from engine.config import Config

    config = Config()
    assert GroupShape.from_config(config.distributed) == GroupShape()
    assert GroupShape.from_config({"nproc_per_node": 3, "strategy": "fsdp", "timeout_s": 9}).world_size == 3


@pytest.mark.parametrize("kwargs", [{"nproc_per_node": 0}, {"strategy": "foo"}, {"nnodes": 2},
                                    {"node_rank": 1}])
def test_bad_shapes_name_the_key(kwargs: dict) -> None:
    with pytest.raises(UserError, match="distributed"):
        GroupShape(**kwargs)

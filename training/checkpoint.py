"""Reading a training checkpoint on several ranks: rank 0 reads the file weights-only, the others receive it."""
import torch.distributed as dist

from utils.checkpoint_utils import CheckpointError, load_checkpoint_to_cpu


def read_checkpoint(filename: str, rank: int, world_size: int, group) -> dict:
    """The checkpoint at ``filename`` on every rank of ``group``; a read error is raised on every rank."""
    state, error = None, None
    if rank == 0:
        try:
            state = load_checkpoint_to_cpu(filename)
        except (CheckpointError, OSError) as err:
            error = err
    if world_size > 1:
        # torch's own pickling between our ranks: fairseq's broadcast_object unpickles with torch.load, whose
        # weights-only default refuses the OmegaConf config that rank 0 has already loaded safely
        payload = [state, error]
        dist.broadcast_object_list(payload, group=group, group_src=0)
        state, error = payload
    if error is not None:
        raise error
    return state

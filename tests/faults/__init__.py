"""The fault suite: bad inputs and lost processes against real local players, serving and clients."""

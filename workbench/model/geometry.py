"""Output sizes and 'same' paddings of convolutions and pools: the arithmetic every lowering shares
(the op vocabulary, the PyTorch layers, the TFLite graph, the profiler's timing graphs)."""


def out_len(size: int, kernel: int, stride: int) -> int:
    """Output length of a 'same'-padded convolution: ceil(size / stride) (= PyTorch's kernel//2 padding
    for odd kernels; TensorFlow's 'same' for any kernel)."""
    return -(-size // stride)


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite SAME padding: total = max((ceil(size / stride) - 1) * stride + kernel - size, 0), the odd
    one at the end."""
    total = max((out_len(size, kernel, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding of a 'same' convolution: kernel//2 each side for odd kernels (what
    PyTorch and the profiler's graphs use), TensorFlow's split of the total for even kernels."""
    if kernel % 2:
        return kernel // 2, kernel // 2
    return tf_same_pads(size, kernel, stride)


def pool_len(size: int, kernel: int, stride: int) -> int:
    """Output length of a 'valid' pooling window."""
    return (size - kernel) // stride + 1

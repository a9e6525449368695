"""Little-endian scalar fields read from page bytes inside compiled code, without array views.

``page[a:b].view(np.float32)[0]`` costs about 30 ns in numba-compiled code (the view is built
and checked at run time); byte loads and a bit cast cost next to nothing.
"""

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic


@intrinsic
def f32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of the integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        i32 = context.get_value_type(types.uint32)
        if bits.bitwidth > 32:
            value = builder.trunc(value, i32)
        elif bits.bitwidth < 32:
            value = builder.zext(value, i32)
        return builder.bitcast(value, context.get_value_type(types.float32))

    return types.float32(bits), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def u32_at(data, off):
    """Little-endian uint32 at byte ``off`` of a uint8 array (as int64)."""
    return (np.int64(data[off]) | (np.int64(data[off + 1]) << 8) | (np.int64(data[off + 2]) << 16)
            | (np.int64(data[off + 3]) << 24))


@numba.njit(cache=True, nogil=True, inline="always")
def f32_at(data, off):
    """Little-endian float32 at byte ``off`` of a uint8 array (as float64)."""
    return np.float64(f32_from_bits(u32_at(data, off)))

-- autonad.ops: thin functional wrappers over the core's elementwise, concat and split
-- (core/ops/elementwise.c, core/ops/concat.c), one function per C function. Outputs are
-- optional (a new tensor when nil); dims are 1-based; a C failure is a Lua error with its message.
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local C, check = core.C, core.check

local M = {}

--- y = alpha a + beta b (b broadcasts: each of its sizes equals a's or is 1). y may be a or b.
function M.add(alpha, a, beta, b, y)
    y = y or tensor.new()
    check(C.nad_add(alpha, a, beta, b, y))
    return y
end

--- y = a * b (b broadcasts).
function M.mul(a, b, y)
    y = y or tensor.new()
    check(C.nad_mul(a, b, y))
    return y
end

--- da = dy * b (overwritten); db += dy * a summed over b's broadcast dims. A nil output is
--- not computed. Returns da, db.
function M.mul_backward(a, b, dy, da, db)
    check(C.nad_mul_backward(a, b, dy, da, db))
    return da, db
end

--- y = s x.
function M.scale(s, x, y)
    y = y or tensor.new()
    check(C.nad_scale(s, x, y))
    return y
end

--- y = concat of the list xs along dim (1-based); the inputs may be views.
function M.concat(xs, dim, y)
    y = y or tensor.new()
    local n = #xs
    local arr = ffi.new('const nad_tensor *[?]', math.max(n, 1))
    for i = 1, n do arr[i - 1] = xs[i] end
    check(C.nad_concat(n, arr, dim - 1, y))
    return y
end

--- The parts of y along dim (1-based) with the given sizes, into the list xs (new tensors
--- where xs or its entries are nil). Returns xs.
function M.split(y, dim, sizes, xs)
    xs = xs or {}
    local n = #sizes
    local sz = ffi.new('int64_t[?]', math.max(n, 1))
    local arr = ffi.new('nad_tensor *[?]', math.max(n, 1))
    for i = 1, n do
        sz[i - 1] = sizes[i]
        xs[i] = xs[i] or tensor.new()
        arr[i - 1] = xs[i]
    end
    check(C.nad_split(y, dim - 1, n, sz, arr))
    return xs
end

return M

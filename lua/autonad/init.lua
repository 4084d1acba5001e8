-- autonad: the Lua entry point. require 'autonad' gives tensors, the random generator,
-- layers (nn), optimisers and schedules (optim), and the core's thread and BLAS controls.
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local random = require 'autonad.random'
local ffi = require 'ffi'
local C = core.C

local autonad = {
    tensor = tensor.new,
    from_table = tensor.from_table,
    is_tensor = tensor.is_tensor,
    Tensor = tensor.Tensor,
    rng = random.new,
    C = C,
    version = ffi.string(C.nad_version()),
}

--- Re-seeds the default generator (layer initialisation).
function autonad.seed(n) random.seed(n) end
autonad.default_rng = random.default

function autonad.set_num_threads(n) core.check(C.nad_set_num_threads(n)) end
function autonad.get_num_threads() return C.nad_get_num_threads() end
function autonad.blas_info() return ffi.string(C.nad_blas_info()) end

-- submodules load on first use: autonad.nn, autonad.optim, autonad.data, ...
return require('autonad.lazy')(autonad, 'autonad')

-- autonad.random: the seeded generator (nad_rng, a counter-based generator in C).
-- Same seed, same bits whatever the thread count; state() / set_state() for checkpoints.
local ffi = require 'ffi'
local core = require 'autonad.ffi'
local C, check = core.C, core.check

local Rng = {}
Rng.__index = Rng

local M = {}

--- A generator seeded with seed (an integer).
function M.new(seed)
    local r = ffi.new('nad_rng')
    C.nad_rng_init(r, seed or 0)
    return r
end

function Rng:uniform_(t, lo, hi) check(C.nad_rng_uniform(self, lo or 0, hi or 1, t)); return t end
function Rng:normal_(t, mean, std) check(C.nad_rng_normal(self, mean or 0, std or 1, t)); return t end
--- A double in [0, 1).
function Rng:random() return C.nad_rng_next_double(self) end
--- An integer in [lo, hi].
function Rng:randint(lo, hi) return lo + math.floor(C.nad_rng_next_double(self) * (hi - lo + 1)) end
--- One element of a list, uniformly.
function Rng:choice(list) return list[self:randint(1, #list)] end
local function u64_string(v) return (tostring(v):gsub('ULL$', '')) end

local function u64_parse(s, key)
    if type(s) ~= 'string' or not s:match('^%d+$') then
        error('autonad: rng state ' .. key .. ' must be a decimal string, got ' .. tostring(s), 3)
    end
    local v = ffi.new('uint64_t', 0)
    for i = 1, #s do v = v * 10 + (s:byte(i) - 48) end
    return v
end

--- The state as two decimal strings (64-bit values survive JSON and Lua numbers this way).
function Rng:state() return { seed = u64_string(self.seed), counter = u64_string(self.counter) } end

function Rng:set_state(s)
    self.seed = u64_parse(s.seed, 'seed')
    self.counter = u64_parse(s.counter, 'counter')
    return self
end

ffi.metatype('nad_rng', Rng)
M.Rng = Rng

--- The generator layers use for their initial weights when not given one (seed 0);
--- autonad.seed(n) re-seeds it.
M.default = M.new(0)
function M.seed(n) C.nad_rng_init(M.default, n) end
return M

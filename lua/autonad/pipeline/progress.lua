-- autonad.pipeline.progress: one progress line per update for long stages:
--   [train-supernet] epoch 3/10  it 120/680  loss 0.412  5.1 it/s  eta 1m52s
-- Lines go to stderr (stdout stays clean for results); a run's logs keep the full record.
local ffi = require 'ffi'

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } nad_timespec;
int clock_gettime(int clk_id, nad_timespec *tp);
]]
local ts = ffi.new('nad_timespec')

local M = {}

--- Seconds on the monotonic clock.
function M.now()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

function M.duration(s)
    if s ~= s or s == math.huge then return '?' end
    s = math.floor(s + 0.5)
    if s < 60 then return s .. 's' end
    if s < 3600 then return string.format('%dm%02ds', math.floor(s / 60), s % 60) end
    return string.format('%dh%02dm', math.floor(s / 3600), math.floor(s / 60) % 60)
end

local Progress = {}
Progress.__index = Progress

--- A progress reporter for stage (a name) over total units (iterations, candidates...).
--- quiet = true prints nothing (tests).
function M.new(stage, total, opts)
    opts = opts or {}
    return setmetatable({ stage = stage, total = total, done = 0, t0 = M.now(), last = 0,
        every = opts.every or 2, quiet = opts.quiet, out = opts.out or io.stderr }, Progress)
end

--- Records n more units done; fields is a list of {label, value} pairs shown in order.
--- Prints at most every `every` seconds, and always on the last unit.
--- Marks n units as already done before this process started (a resumed stage): they count
--- towards the total but not towards the speed.
function Progress:resume(n)
    self.done, self.base = n, n
end

function Progress:step(n, fields)
    self.done = self.done + (n or 1)
    local t = M.now()
    if self.quiet or (t - self.last < self.every and self.done < self.total) then return end
    self.last = t
    local rate = (self.done - (self.base or 0)) / math.max(t - self.t0, 1e-9)
    local parts = { '[' .. self.stage .. ']' }
    for _, f in ipairs(fields or {}) do
        local v = f[2]
        parts[#parts + 1] = f[1] .. ' ' .. (type(v) == 'number' and string.format(v % 1 == 0 and '%d' or '%.4g', v) or tostring(v))
    end
    parts[#parts + 1] = string.format('%d/%d', self.done, self.total)
    parts[#parts + 1] = string.format('%.2f/s', rate)
    parts[#parts + 1] = 'eta ' .. M.duration((self.total - self.done) / rate)
    self.out:write(table.concat(parts, '  '), '\n')
    self.out:flush()
end

return M

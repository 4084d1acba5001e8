-- autonad.nn.Shift(dirs): the S2-MLP spatial shift of x[N,H,W,C] (C divisible by 4): channel
-- quarter q moves one pixel in direction dirs[q]. dirs: 'shift1' (S2-MLPv2's spatial_shift1:
-- down, up, right, left), 'shift2' (right, left, down, up), or a list of four of
-- 'down', 'up', 'right', 'left'. Mirrors core/ops/shift.c.
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local Shift = class('Shift', Module)

local codes = { down = C.NAD_SHIFT_DOWN, up = C.NAD_SHIFT_UP, right = C.NAD_SHIFT_RIGHT,
                left = C.NAD_SHIFT_LEFT }
Shift.presets = { shift1 = { 'down', 'up', 'right', 'left' }, shift2 = { 'right', 'left', 'down', 'up' } }

function Shift:init(dirs)
    Module.init(self)
    dirs = dirs or 'shift1'
    if type(dirs) == 'string' then
        if not Shift.presets[dirs] then
            error("autonad: Shift preset '" .. dirs .. "' is not 'shift1' or 'shift2'", 3)
        end
        dirs = Shift.presets[dirs]
    end
    if type(dirs) ~= 'table' or #dirs ~= 4 then error('autonad: Shift needs four directions', 3) end
    self.dirs = ffi.new('int32_t[4]')
    self.names = {}
    for i = 1, 4 do
        local code = codes[dirs[i]]
        if not code then
            error("autonad: Shift direction " .. i .. " '" .. tostring(dirs[i]) ..
                "' is not down, up, right or left", 3)
        end
        self.dirs[i - 1] = code
        self.names[i] = dirs[i]
    end
end

function Shift:forward(x)
    check(C.nad_shift_forward(self.dirs, x, self.output))
    return self.output
end

function Shift:backward(x, dy)
    check(C.nad_shift_backward(self.dirs, dy, self.grad_input))
    return self.grad_input
end

function Shift:__tostring() return 'nn.Shift(' .. table.concat(self.names, ', ') .. ')' end

return Shift

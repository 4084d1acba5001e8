-- testing: the assertions the Lua tests use. Each failure raises an error whose message says
-- what differed; the runner (run.lua) counts the failures.
local T = {}

local function fail(msg, level) error(msg, (level or 1) + 2) end

function T.ok(v, msg) if not v then fail(msg or 'expected a true value') end end

function T.eq(a, b, msg)
    if a ~= b then fail((msg and msg .. ': ' or '') .. 'expected ' .. tostring(b) .. ', got ' .. tostring(a)) end
end

--- |a - b| <= tol * max(1, |b|)
function T.near(a, b, tol, msg)
    tol = tol or 1e-6
    if not (math.abs(a - b) <= tol * math.max(1, math.abs(b))) then
        fail((msg and msg .. ': ' or '') .. string.format('expected %.9g, got %.9g (tol %g)', b, a, tol))
    end
end

--- Two flat lists (or tensors, compared by tolist) equal within tol relative.
function T.all_near(a, b, tol, msg)
    if type(a) ~= 'table' then a = a:tolist() end
    if type(b) ~= 'table' then b = b:tolist() end
    if #a ~= #b then fail((msg or '') .. ' sizes differ: ' .. #a .. ' vs ' .. #b) end
    for i = 1, #a do
        if not (math.abs(a[i] - b[i]) <= (tol or 1e-6) * math.max(1, math.abs(b[i]))) then
            fail(string.format('%s element %d: expected %.9g, got %.9g', msg or '', i, b[i], a[i]))
        end
    end
end

--- fn() must raise an error whose message contains `fragment` (plain text).
function T.errors(fn, fragment)
    local ok, err = pcall(fn)
    if ok then fail('expected an error containing "' .. fragment .. '"') end
    if not tostring(err):find(fragment, 1, true) then
        fail('error "' .. tostring(err) .. '" does not contain "' .. fragment .. '"')
    end
    return err
end

--- Skips the running test with a reason (the runner counts it as skipped).
function T.skip(reason) error({ skip = reason }, 0) end

return T

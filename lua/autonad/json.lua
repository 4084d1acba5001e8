-- autonad.json: a small JSON encoder/decoder for architectures, metrics and logs.
-- Encoding is deterministic (object keys sorted) so the same data gives the same bytes.
-- Numbers that are integers print without a fraction; others with 17 significant digits,
-- so a float survives the round trip exactly.
local M = {}

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
    ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return escapes[c] or string.format('\\u%04x', c:byte())
    end) .. '"'
end

local function is_array(t)
    local n = #t
    for k in pairs(t) do
        if type(k) ~= 'number' or k < 1 or k > n or k % 1 ~= 0 then return false end
    end
    return n > 0 or next(t) == nil
end

local function encode(v, indent, depth, out)
    local tv = type(v)
    if tv == 'nil' then out[#out + 1] = 'null'
    elseif tv == 'boolean' then out[#out + 1] = tostring(v)
    elseif tv == 'number' then
        if v ~= v or v == math.huge or v == -math.huge then
            error('autonad: json cannot encode ' .. tostring(v), 0)
        end
        if v % 1 == 0 and math.abs(v) < 2 ^ 53 then out[#out + 1] = string.format('%d', v)
        else
            -- the shortest of 15 or 17 digits that reads back as the same double
            local s = string.format('%.15g', v)
            out[#out + 1] = tonumber(s) == v and s or string.format('%.17g', v)
        end
    elseif tv == 'string' then out[#out + 1] = encode_string(v)
    elseif tv == 'table' then
        local nl = indent and ('\n' .. string.rep(indent, depth + 1)) or ''
        local close = indent and ('\n' .. string.rep(indent, depth)) or ''
        if is_array(v) then
            if #v == 0 then out[#out + 1] = '[]'; return end
            out[#out + 1] = '['
            for i = 1, #v do
                out[#out + 1] = (i > 1 and ',' or '') .. nl
                encode(v[i], indent, depth + 1, out)
            end
            out[#out + 1] = close .. ']'
        else
            local keys = {}
            for k in pairs(v) do
                if type(k) ~= 'string' then error('autonad: json object keys must be strings', 0) end
                keys[#keys + 1] = k
            end
            table.sort(keys)
            out[#out + 1] = '{'
            for i, k in ipairs(keys) do
                out[#out + 1] = (i > 1 and ',' or '') .. nl .. encode_string(k) .. (indent and ': ' or ':')
                encode(v[k], indent, depth + 1, out)
            end
            out[#out + 1] = close .. '}'
        end
    else
        error('autonad: json cannot encode a ' .. tv, 0)
    end
end

--- JSON text of v; opts.indent (e.g. '  ') pretty-prints.
function M.encode(v, opts)
    local out = {}
    encode(v, opts and opts.indent, 0, out)
    return table.concat(out)
end

local function decode_error(s, pos, what)
    local line = select(2, s:sub(1, pos):gsub('\n', '')) + 1
    error(string.format('autonad: json: %s at line %d (byte %d)', what, line, pos), 0)
end

local function skip(s, pos) return s:find('[^ \t\r\n]', pos) or #s + 1 end

local decode_value

local function decode_string(s, pos)
    local out, i = {}, pos + 1
    while true do
        local c = s:sub(i, i)
        if c == '' then decode_error(s, pos, 'unterminated string') end
        if c == '"' then return table.concat(out), i + 1 end
        if c == '\\' then
            local e = s:sub(i + 1, i + 1)
            local map = { b = '\b', f = '\f', n = '\n', r = '\r', t = '\t', ['"'] = '"', ['\\'] = '\\', ['/'] = '/' }
            if map[e] then out[#out + 1] = map[e]; i = i + 2
            elseif e == 'u' then
                local code = tonumber(s:sub(i + 2, i + 5), 16)
                if not code then decode_error(s, i, 'bad \\u escape') end
                if code < 0x80 then out[#out + 1] = string.char(code)
                elseif code < 0x800 then
                    out[#out + 1] = string.char(0xC0 + math.floor(code / 64), 0x80 + code % 64)
                else
                    out[#out + 1] = string.char(0xE0 + math.floor(code / 4096),
                        0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
                end
                i = i + 6
            else decode_error(s, i, 'bad escape') end
        else
            out[#out + 1] = c; i = i + 1
        end
    end
end

function decode_value(s, pos)
    pos = skip(s, pos)
    local c = s:sub(pos, pos)
    if c == '{' then
        local obj = {}
        pos = skip(s, pos + 1)
        if s:sub(pos, pos) == '}' then return obj, pos + 1 end
        while true do
            if s:sub(pos, pos) ~= '"' then decode_error(s, pos, 'expected a key') end
            local k
            k, pos = decode_string(s, pos)
            pos = skip(s, pos)
            if s:sub(pos, pos) ~= ':' then decode_error(s, pos, "expected ':'") end
            obj[k], pos = decode_value(s, pos + 1)
            pos = skip(s, pos)
            local d = s:sub(pos, pos)
            if d == '}' then return obj, pos + 1 end
            if d ~= ',' then decode_error(s, pos, "expected ',' or '}'") end
            pos = skip(s, pos + 1)
        end
    elseif c == '[' then
        local arr = {}
        pos = skip(s, pos + 1)
        if s:sub(pos, pos) == ']' then return arr, pos + 1 end
        while true do
            arr[#arr + 1], pos = decode_value(s, pos)
            pos = skip(s, pos)
            local d = s:sub(pos, pos)
            if d == ']' then return arr, pos + 1 end
            if d ~= ',' then decode_error(s, pos, "expected ',' or ']'") end
            pos = pos + 1
        end
    elseif c == '"' then return decode_string(s, pos)
    elseif s:sub(pos, pos + 3) == 'true' then return true, pos + 4
    elseif s:sub(pos, pos + 4) == 'false' then return false, pos + 5
    elseif s:sub(pos, pos + 3) == 'null' then return nil, pos + 4
    else
        local num = s:match('^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
        if not num or num == '' or not tonumber(num) then decode_error(s, pos, 'unexpected character') end
        return tonumber(num), pos + #num
    end
end

--- The value of JSON text s; errors name the line of the problem.
function M.decode(s)
    local v, pos = decode_value(s, 1)
    pos = skip(s, pos)
    if pos <= #s then decode_error(s, pos, 'trailing characters') end
    return v
end

--- Reads and decodes a JSON file; errors name the file.
function M.read(path)
    local f, err = io.open(path, 'rb')
    if not f then error('autonad: cannot read ' .. path .. ': ' .. tostring(err), 0) end
    local s = f:read('*a')
    f:close()
    local ok, v = pcall(M.decode, s)
    if not ok then error(tostring(v):gsub('^autonad: json:', 'autonad: ' .. path .. ':'), 0) end
    return v
end

--- Writes v as JSON to path atomically (a temporary file renamed over it).
function M.write(path, v, opts)
    local tmp = path .. '.tmp'
    local f, err = io.open(tmp, 'wb')
    if not f then error('autonad: cannot write ' .. path .. ': ' .. tostring(err), 0) end
    f:write(M.encode(v, opts or { indent = '  ' }), '\n')
    f:close()
    local ok, rerr = os.rename(tmp, path)
    if not ok then error('autonad: cannot write ' .. path .. ': ' .. tostring(rerr), 0) end
end

return M

-- autonad.data.fs: the few file-system helpers the dataset adapters need (listing a folder,
-- testing a path), with no external Lua library: listings come from `find` through io.popen,
-- every path single-quoted for the shell.
local M = {}

--- The path quoted for a POSIX shell ('it'\''s').
function M.quote(path) return "'" .. tostring(path):gsub("'", "'\\''") .. "'" end

--- a/b, without doubling the slash.
function M.join(a, b)
    if a == '' or a == '.' then return b end
    return (a:gsub('/+$', '')) .. '/' .. b
end

--- true when path names a readable regular file.
function M.is_file(path)
    local f = io.open(path, 'rb')
    if not f then return false end
    -- reading a directory fails on Linux: a directory is not a file
    local ok = f:read(0) ~= nil or f:seek('end') == 0
    f:close()
    return ok
end

local function run_lines(cmd)
    local p = io.popen(cmd .. ' 2>/dev/null')
    local out = {}
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    return out
end

--- true when path names a directory.
function M.is_dir(path)
    return #run_lines('test -d ' .. M.quote(path) .. ' && echo y') == 1
end

--- Fails with "<who>: folder <path> does not exist" unless path is a directory.
function M.need_dir(path, who)
    if not M.is_dir(path) then error(who .. ': folder ' .. path .. ' does not exist', 0) end
    return path
end

--- Names (not paths) of the entries of dir of the given kind ('f' files, 'd' folders),
--- sorted bytewise; hidden entries skipped.
function M.list(dir, kind)
    local names = run_lines('find ' .. M.quote(dir) .. ' -mindepth 1 -maxdepth 1 -type ' ..
        (kind or 'f') .. " -printf '%f\\n'")
    local out = {}
    for _, n in ipairs(names) do
        if n:sub(1, 1) ~= '.' then out[#out + 1] = n end
    end
    table.sort(out)
    return out
end

--- The lower-case extension of a name ('bmp' for 'a.BMP'), or ''.
function M.ext(name) return (name:match('%.([^./]+)$') or ''):lower() end

--- The name without its extension.
function M.stem(name) return name:match('^(.*)%.[^./]+$') or name end

--- Files of dir whose extension is in the set exts ({bmp=true, ...}), sorted.
function M.list_ext(dir, exts)
    local out = {}
    for _, n in ipairs(M.list(dir, 'f')) do
        if exts[M.ext(n)] then out[#out + 1] = n end
    end
    return out
end

M.image_exts = { bmp = true, png = true, jpg = true, jpeg = true }

--- The size of a file in bytes, or nil when it cannot be opened.
function M.size(path)
    local f = io.open(path, 'rb')
    if not f then return nil end
    local n = f:seek('end')
    f:close()
    return n
end

--- The whole content of a file, or nil, message.
function M.read(path)
    local f, err = io.open(path, 'rb')
    if not f then return nil, err end
    local s = f:read('*a')
    f:close()
    return s
end

--- A fresh temporary directory (for tests); remove it with M.remove_tree.
function M.temp_dir()
    local out = run_lines('mktemp -d')
    if not out[1] then error('fs.temp_dir: mktemp -d failed', 2) end
    return out[1]
end

function M.mkdir(path) os.execute('mkdir -p ' .. M.quote(path)) end

function M.remove_tree(path)
    if path and #path > 5 and path:match('^/tmp/') then os.execute('rm -rf ' .. M.quote(path)) end
end

return M

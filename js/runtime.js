// settee's JavaScript runtime: the helpers CouchDB's query server
// (apache/couchdb share/server/util.js and views.js) gives design-document
// functions. Every worker evaluates this file once in its own Context.
//
// Installed by Rust before this file runs:
//   emit(key, value)        map output; Rust converts with JSON.stringify rules.
//   __settee_log(message)   writes one string to the server log (tracing).
//
// Everything here is plain ECMAScript: there is no filesystem, network,
// process or timer access, and nothing is added that would give any.

// `sum(values)`: a numeric `+` fold over the array's enumerable members,
// exactly as CouchDB's (so `sum(["1", 2])` concatenates, as there).
var sum = function (values) {
  var rv = 0;
  for (var i in values) {
    rv += values[i];
  }
  return rv;
};

// CouchDB: `toString.call(obj) === "[object Array]"`.
var isArray = function (obj) {
  return Object.prototype.toString.call(obj) === "[object Array]";
};

var toJSON = function (val) {
  return JSON.stringify(val);
};

// Non-strings are JSON-encoded, as CouchDB's log() does.
var log = function (message) {
  if (typeof message != "string") {
    message = JSON.stringify(message);
  }
  __settee_log(String(message));
};

var __settee = (function () {
  // Resolves a require() path inside a design document, step by step, as
  // CouchDB's resolveModule does. `mod` describes where the path is relative
  // to: {current, parent, id}. `root` is the design document (for map
  // functions: {views: {lib: ...}}); paths not starting with "." or ".."
  // start from it.
  function resolveModule(names, mod, root) {
    if (names.length == 0) {
      if (typeof mod.current != "string") {
        throw ["error", "invalid_require_path",
          "Must require a JavaScript string, not: " + (typeof mod.current)];
      }
      return { current: mod.current, parent: mod.parent, id: mod.id, exports: {} };
    }
    var n = names.shift();
    if (n == "..") {
      if (!(mod.parent && mod.parent.parent)) {
        throw ["error", "invalid_require_path",
          "Object has no parent " + JSON.stringify(mod.current)];
      }
      return resolveModule(names, {
        id: mod.id.slice(0, mod.id.lastIndexOf("/")),
        parent: mod.parent.parent.parent,
        current: mod.parent.parent.current
      });
    } else if (n == ".") {
      if (!mod.parent) {
        throw ["error", "invalid_require_path",
          "Object has no parent " + JSON.stringify(mod.current)];
      }
      return resolveModule(names, {
        parent: mod.parent.parent,
        current: mod.parent.current,
        id: mod.id
      });
    } else if (root) {
      mod = { current: root };
    }
    if (mod.current === null || typeof mod.current != "object" || !mod.current[n]) {
      throw ["error", "invalid_require_path",
        "Object has no property \"" + n + "\". " + JSON.stringify(mod.current)];
    }
    return resolveModule(names, {
      current: mod.current[n],
      parent: mod,
      id: mod.id ? mod.id + "/" + n : n
    });
  }

  // What SpiderMonkey's `e.toSource()` gives for the common cases, used in
  // CouchDB's messages: `(new TypeError("msg", "<unknown>", 1))` for errors,
  // JSON for other values.
  function describe(e) {
    if (e instanceof Error) {
      return "(new " + e.name + "(" + JSON.stringify(String(e.message)) + ", \"<unknown>\", 1))";
    }
    try {
      var text = JSON.stringify(e);
      return text === undefined ? String(e) : text;
    } catch (x) {
      return String(e);
    }
  }

  // Builds the `require` of one design document. Modules are evaluated once
  // and cached by their resolved id for the life of the function group.
  function makeRequire(root) {
    var cache = {};
    function requireFrom(name, parent) {
      var module = resolveModule(String(name).split("/"), parent || {}, parent ? undefined : root);
      if (Object.prototype.hasOwnProperty.call(cache, module.id)) {
        return cache[module.id].exports;
      }
      var factory;
      try {
        factory = (0, eval)("(function (module, exports, require) { " + module.current + "\n})");
        cache[module.id] = module;
        factory.call(globalThis, module, module.exports, function (child) {
          return requireFrom(child, module);
        });
      } catch (e) {
        delete cache[module.id];
        if (isArray(e) && e[0] == "error") {
          throw e;
        }
        throw ["error", "compilation_error",
          "Module require('" + name + "') raised error " + describe(e)];
      }
      return module.exports;
    }
    return function require(name) {
      return requireFrom(name, undefined);
    };
  }

  return { makeRequire: makeRequire, describe: describe };
})();

//! The library as a Node-API module: Node's `process.dlopen` of this same shared library
//! calls [`napi_register_module_v1`], which hands the JavaScript binding
//! (`bindings/node/lib/native.js`) the functions of the seed's API (open, get, the
//! packed batch set and get, set, delete, stats, flush, compact, enforce_policy, close) without
//! koffi, and one call koffi had no form of: the packed batch set on libuv's thread pool
//! (`batchSetPackedAsync`, with `batchWait`), so that JavaScript goes on while a batch is
//! written. Loading koffi cost a new Node process 11-16 ms, as much as everything else a
//! 1,000-key second build does.
//!
//! Nothing here is linked against Node: the Node-API functions are looked up with
//! `dlsym(RTLD_DEFAULT)` when Node registers the module, so C programs load the library
//! exactly as before and never call this. Every function checks its arguments' types
//! (a wrong one throws a TypeError) and passes addresses as JavaScript numbers, as the
//! koffi declarations the binding used did (`uintptr_t`).
//!
//! Not part of the C ABI (`cbindgen:ignore`), and not in the header.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use crate::cache::{nexxo_cache, nexxo_stats};
use crate::options::nexxo_options;
use crate::status::{nexxo_status, StatusArg};

type napi_env = *mut c_void;
type napi_value = *mut c_void;
type napi_callback_info = *mut c_void;
type napi_status = c_int;
type napi_callback = unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value;
type napi_async_work = *mut c_void;
type napi_deferred = *mut c_void;
type napi_ref = *mut c_void;
type napi_async_execute_callback = unsafe extern "C" fn(napi_env, *mut c_void);
type napi_async_complete_callback = unsafe extern "C" fn(napi_env, napi_status, *mut c_void);

const NAPI_OK: napi_status = 0;
/// `napi_valuetype`'s undefined and null.
const NAPI_UNDEFINED: c_int = 0;
const NAPI_NULL: c_int = 1;

/// The Node-API functions used here, found in the running process.
struct Api {
    create_function: unsafe extern "C" fn(napi_env, *const c_char, usize, napi_callback, *mut c_void, *mut napi_value) -> napi_status,
    set_named_property: unsafe extern "C" fn(napi_env, napi_value, *const c_char, napi_value) -> napi_status,
    get_cb_info: unsafe extern "C" fn(napi_env, napi_callback_info, *mut usize, *mut napi_value, *mut napi_value, *mut *mut c_void) -> napi_status,
    get_value_double: unsafe extern "C" fn(napi_env, napi_value, *mut f64) -> napi_status,
    get_value_string_utf8: unsafe extern "C" fn(napi_env, napi_value, *mut c_char, usize, *mut usize) -> napi_status,
    is_buffer: unsafe extern "C" fn(napi_env, napi_value, *mut bool) -> napi_status,
    get_buffer_info: unsafe extern "C" fn(napi_env, napi_value, *mut *mut c_void, *mut usize) -> napi_status,
    create_double: unsafe extern "C" fn(napi_env, f64, *mut napi_value) -> napi_status,
    create_string_utf8: unsafe extern "C" fn(napi_env, *const c_char, usize, *mut napi_value) -> napi_status,
    get_boolean: unsafe extern "C" fn(napi_env, bool, *mut napi_value) -> napi_status,
    get_undefined: unsafe extern "C" fn(napi_env, *mut napi_value) -> napi_status,
    set_element: unsafe extern "C" fn(napi_env, napi_value, u32, napi_value) -> napi_status,
    throw_type_error: unsafe extern "C" fn(napi_env, *const c_char, *const c_char) -> napi_status,
    type_of: unsafe extern "C" fn(napi_env, napi_value, *mut c_int) -> napi_status,
    create_promise: unsafe extern "C" fn(napi_env, *mut napi_deferred, *mut napi_value) -> napi_status,
    resolve_deferred: unsafe extern "C" fn(napi_env, napi_deferred, napi_value) -> napi_status,
    create_async_work: unsafe extern "C" fn(
        napi_env,
        napi_value,
        napi_value,
        napi_async_execute_callback,
        napi_async_complete_callback,
        *mut c_void,
        *mut napi_async_work,
    ) -> napi_status,
    queue_async_work: unsafe extern "C" fn(napi_env, napi_async_work) -> napi_status,
    delete_async_work: unsafe extern "C" fn(napi_env, napi_async_work) -> napi_status,
    create_reference: unsafe extern "C" fn(napi_env, napi_value, u32, *mut napi_ref) -> napi_status,
    delete_reference: unsafe extern "C" fn(napi_env, napi_ref) -> napi_status,
}

/// The functions of [`Api`], or `None` when the process lacks one (not Node, or a Node
/// without Node-API 1).
#[allow(clippy::missing_transmute_annotations)]
fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        // SAFETY: each name is a NUL-terminated Node-API function whose C signature is
        // the field's type (node_api.h, Node-API version 1).
        unsafe {
            macro_rules! sym {
                ($name:literal) => {{
                    let p = libc::dlsym(libc::RTLD_DEFAULT, concat!($name, "\0").as_ptr().cast());
                    if p.is_null() {
                        return None;
                    }
                    std::mem::transmute::<*mut c_void, _>(p)
                }};
            }
            Some(Api {
                create_function: sym!("napi_create_function"),
                set_named_property: sym!("napi_set_named_property"),
                get_cb_info: sym!("napi_get_cb_info"),
                get_value_double: sym!("napi_get_value_double"),
                get_value_string_utf8: sym!("napi_get_value_string_utf8"),
                is_buffer: sym!("napi_is_buffer"),
                get_buffer_info: sym!("napi_get_buffer_info"),
                create_double: sym!("napi_create_double"),
                create_string_utf8: sym!("napi_create_string_utf8"),
                get_boolean: sym!("napi_get_boolean"),
                get_undefined: sym!("napi_get_undefined"),
                set_element: sym!("napi_set_element"),
                throw_type_error: sym!("napi_throw_type_error"),
                type_of: sym!("napi_typeof"),
                create_promise: sym!("napi_create_promise"),
                resolve_deferred: sym!("napi_resolve_deferred"),
                create_async_work: sym!("napi_create_async_work"),
                queue_async_work: sym!("napi_queue_async_work"),
                delete_async_work: sym!("napi_delete_async_work"),
                create_reference: sym!("napi_create_reference"),
                delete_reference: sym!("napi_delete_reference"),
            })
        }
    })
    .as_ref()
}

/// A call's arguments, read through [`Api`]; a wrong one is an `Err` with the message
/// the caller gets as a TypeError.
struct Call {
    api: &'static Api,
    env: napi_env,
    args: [napi_value; 8],
    argc: usize,
}

type Arg<T> = Result<T, &'static CStr>;

impl Call {
    unsafe fn new(env: napi_env, info: napi_callback_info) -> Option<Call> {
        let api = api()?;
        let mut c = Call { api, env, args: [std::ptr::null_mut(); 8], argc: 8 };
        ((api.get_cb_info)(env, info, &mut c.argc, c.args.as_mut_ptr(), std::ptr::null_mut(), std::ptr::null_mut()) == NAPI_OK).then_some(c)
    }

    fn arg(&self, i: usize) -> Arg<napi_value> {
        if i < self.argc.min(8) {
            Ok(self.args[i])
        } else {
            Err(c"nexxo-cache: a native call is missing an argument")
        }
    }

    /// A number argument (every integer and address the C functions take).
    unsafe fn num(&self, i: usize) -> Arg<f64> {
        let mut v = 0.0;
        if (self.api.get_value_double)(self.env, self.arg(i)?, &mut v) != NAPI_OK {
            return Err(c"nexxo-cache: a native call expected a number");
        }
        Ok(v)
    }

    /// A non-negative integer argument that fits `usize` exactly.
    unsafe fn size(&self, i: usize) -> Arg<usize> {
        let v = self.num(i)?;
        if v >= 0.0 && v.fract() == 0.0 && v < 9_007_199_254_740_992.0 {
            Ok(v as usize)
        } else {
            Err(c"nexxo-cache: a native call expected a non-negative integer")
        }
    }

    /// An address argument (0 is NULL, which the C functions reject with a status).
    unsafe fn ptr<T>(&self, i: usize) -> Arg<*mut T> {
        Ok(self.size(i)? as *mut T)
    }

    /// A Buffer or typed array argument: its first byte and length.
    unsafe fn bytes(&self, i: usize) -> Arg<(*mut u8, usize)> {
        let v = self.arg(i)?;
        let mut is = false;
        if (self.api.is_buffer)(self.env, v, &mut is) != NAPI_OK || !is {
            return Err(c"nexxo-cache: a native call expected a Buffer");
        }
        let (mut data, mut len) = (std::ptr::null_mut(), 0);
        if (self.api.get_buffer_info)(self.env, v, &mut data, &mut len) != NAPI_OK {
            return Err(c"nexxo-cache: a native call expected a Buffer");
        }
        Ok((data.cast(), len))
    }

    /// A string argument as NUL-terminated UTF-8; one with a NUL inside is refused (the
    /// C function would see only the text before it: another path or category).
    unsafe fn string(&self, i: usize) -> Arg<Vec<u8>> {
        let v = self.arg(i)?;
        let mut len = 0;
        if (self.api.get_value_string_utf8)(self.env, v, std::ptr::null_mut(), 0, &mut len) != NAPI_OK {
            return Err(c"nexxo-cache: a native call expected a string");
        }
        let mut buf = vec![0u8; len + 1];
        if (self.api.get_value_string_utf8)(self.env, v, buf.as_mut_ptr().cast(), len + 1, &mut len) != NAPI_OK {
            return Err(c"nexxo-cache: a native call expected a string");
        }
        buf.truncate(len + 1);
        if buf[..len].contains(&0) {
            return Err(c"nexxo-cache: a path or name passed to the library contains a NUL character");
        }
        Ok(buf)
    }

    /// A string argument, or `None` for null or undefined (a NULL pointer to C).
    unsafe fn opt_string(&self, i: usize) -> Arg<Option<Vec<u8>>> {
        let mut t = -1;
        if (self.api.type_of)(self.env, self.arg(i)?, &mut t) != NAPI_OK {
            return Err(c"nexxo-cache: a native call's argument could not be read");
        }
        if t == NAPI_UNDEFINED || t == NAPI_NULL {
            return Ok(None);
        }
        self.string(i).map(Some)
    }

    unsafe fn number(&self, v: f64) -> napi_value {
        let mut out = std::ptr::null_mut();
        (self.api.create_double)(self.env, v, &mut out);
        out
    }

    unsafe fn status(&self, s: nexxo_status) -> napi_value {
        self.number(s as u32 as f64)
    }

    unsafe fn text(&self, s: &CStr) -> napi_value {
        let mut out = std::ptr::null_mut();
        (self.api.create_string_utf8)(self.env, s.as_ptr(), s.to_bytes().len(), &mut out);
        out
    }

    unsafe fn undefined(&self) -> napi_value {
        let mut out = std::ptr::null_mut();
        (self.api.get_undefined)(self.env, &mut out);
        out
    }

    unsafe fn set(&self, obj: napi_value, name: &CStr, v: napi_value) {
        (self.api.set_named_property)(self.env, obj, name.as_ptr(), v);
    }

    unsafe fn boolean(&self, b: bool) -> napi_value {
        let mut out = std::ptr::null_mut();
        (self.api.get_boolean)(self.env, b, &mut out);
        out
    }

    /// Sets each named count on `obj` as a number (exact up to 2^53).
    unsafe fn counts_into(&self, obj: napi_value, fields: &[(&CStr, u64)]) {
        for &(name, v) in fields {
            self.set(obj, name, self.number(v as f64));
        }
    }

    /// Fills `obj` with a `nexxo_stats`' fields under their C names (what koffi did with
    /// the struct the binding declared).
    unsafe fn stats_into(&self, obj: napi_value, s: &nexxo_stats) {
        self.counts_into(
            obj,
            &[
                (c"hits", s.hits),
                (c"misses", s.misses),
                (c"writes", s.writes),
                (c"deletes", s.deletes),
                (c"entries", s.entries),
                (c"logical_bytes", s.logical_bytes),
                (c"stored_bytes", s.stored_bytes),
                (c"disk_bytes", s.disk_bytes),
                (c"evictions", s.evictions),
                (c"corrupt_dropped", s.corrupt_dropped),
            ],
        );
        self.set(obj, c"hit_rate", self.number(s.hit_rate));
        self.set(obj, c"read_only", self.boolean(s.read_only));
        self.set(obj, c"disabled", self.boolean(s.disabled));
        self.set(obj, c"disabled_reason", self.status(s.disabled_reason));
        self.set(obj, c"recovered", self.boolean(s.recovered));
    }
}

/// Defines a Node-API callback `$name` running `$body` with the call's arguments: an
/// `Err` from an argument throws a TypeError, a panic (a bug) throws one too.
macro_rules! napi_fn {
    ($name:ident, |$c:ident| $body:block) => {
        unsafe extern "C" fn $name(env: napi_env, info: napi_callback_info) -> napi_value {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let Some($c) = Call::new(env, info) else { return Err(c"nexxo-cache: the native call's arguments could not be read") };
                let $c = &$c;
                let r: Arg<napi_value> = $body;
                r
            }));
            let msg = match r {
                Ok(Ok(v)) => return v,
                Ok(Err(m)) => m,
                Err(_) => c"nexxo-cache: a native call panicked (a bug: please report it)",
            };
            if let Some(api) = api() {
                (api.throw_type_error)(env, std::ptr::null(), msg.as_ptr());
            }
            std::ptr::null_mut()
        }
    };
}

napi_fn!(version, |c| { Ok(c.text(CStr::from_ptr(crate::version::nexxo_version()))) });

napi_fn!(status_str, |c| {
    let s = c.num(0)?;
    let s = if (0.0..=u32::MAX as f64).contains(&s) { s as u32 } else { u32::MAX };
    Ok(c.text(CStr::from_ptr(crate::status::nexxo_status_str(StatusArg(s)))))
});

napi_fn!(options_new, |c| { Ok(c.number(crate::options::nexxo_options_new() as usize as f64)) });

napi_fn!(options_free, |c| {
    crate::options::nexxo_options_free(c.ptr::<nexxo_options>(0)?);
    Ok(c.undefined())
});

// open(path, options, out): out[0] is set to the handle's address.
napi_fn!(open, |c| {
    let path = c.string(0)?;
    let o = c.ptr::<nexxo_options>(1)?;
    let out = c.arg(2)?;
    let mut h: *mut nexxo_cache = std::ptr::null_mut();
    let s = crate::cache::nexxo_cache_open(path.as_ptr().cast(), o, &mut h);
    if s == nexxo_status::NEXXO_OK {
        (c.api.set_element)(c.env, out, 0, c.number(h as usize as f64));
    }
    Ok(c.status(s))
});

napi_fn!(close, |c| {
    crate::cache::nexxo_cache_close(c.ptr::<nexxo_cache>(0)?);
    Ok(c.undefined())
});

// getIntoAt(c, category, key, keyLen, buf, cap, outLen): every pointer an address.
napi_fn!(get_into_at, |c| {
    let s = crate::cache::nexxo_cache_get_into(
        c.ptr::<nexxo_cache>(0)?,
        c.ptr::<c_char>(1)?,
        c.ptr::<u8>(2)?,
        c.size(3)?,
        c.ptr::<u8>(4)?,
        c.size(5)?,
        c.ptr::<usize>(6)?,
    );
    Ok(c.status(s))
});

// getInto(c, category, key, keyLen, buf, cap, outLen): Buffers (outLen: a BigUint64Array
// of one element, or any buffer of 8 bytes). Lengths past a buffer's end are refused.
napi_fn!(get_into, |c| {
    let (cat, cat_len) = c.bytes(1)?;
    let (key, key_cap) = c.bytes(2)?;
    let key_len = c.size(3)?;
    let (buf, buf_cap) = c.bytes(4)?;
    let cap = c.size(5)?;
    let (out, out_cap) = c.bytes(6)?;
    if key_len > key_cap || cap > buf_cap || out_cap < std::mem::size_of::<usize>() || !cat_terminated(cat, cat_len) {
        return Err(c"nexxo-cache: getInto's lengths do not fit its buffers");
    }
    let mut got = 0usize;
    let s = crate::cache::nexxo_cache_get_into(c.ptr::<nexxo_cache>(0)?, cat.cast(), key, key_len, buf, cap, &mut got);
    std::ptr::copy_nonoverlapping((&got as *const usize).cast::<u8>(), out, std::mem::size_of::<usize>());
    Ok(c.status(s))
});

// batchSetPacked(c, packed, len, count)
napi_fn!(batch_set_packed, |c| {
    let (p, cap) = c.bytes(1)?;
    let len = c.size(2)?;
    if len > cap {
        return Err(c"nexxo-cache: batchSetPacked's length is past its buffer's end");
    }
    Ok(c.status(crate::packed::nexxo_cache_batch_set_packed(c.ptr::<nexxo_cache>(0)?, p, len, c.size(3)?)))
});

/// A packed batch written off the JavaScript thread (`batchSetPackedAsync`): by the
/// thread pool's worker, or by the JavaScript thread itself when it must wait for it
/// (`batchWait`) before the worker has started it: whichever comes first runs it.
struct Flight {
    state: Mutex<FlightState>,
    landed: Condvar,
    /// The handle, the packed records (kept alive by the job's reference to their
    /// Buffer) and their length and count, as addresses.
    cache: usize,
    packed: usize,
    len: usize,
    count: usize,
}

enum FlightState {
    Queued,
    Running,
    Done(nexxo_status),
}

impl Flight {
    fn lock(&self) -> MutexGuard<'_, FlightState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the batch unless another thread has started it, then waits until it is
    /// written: its status.
    fn land(&self) -> nexxo_status {
        let mut st = self.lock();
        if let FlightState::Queued = *st {
            *st = FlightState::Running;
            drop(st);
            // SAFETY: the job holds a reference to the Buffer at `packed` until it
            // completes, and the binding neither closes the handle nor touches the
            // Buffer while the batch is in flight.
            // (The C function turns panics into NEXXO_PANIC itself; caught here too, so
            // that no waiter is left waiting for a batch that never lands.)
            let s = std::panic::catch_unwind(|| unsafe {
                crate::packed::nexxo_cache_batch_set_packed(self.cache as *mut nexxo_cache, self.packed as *const u8, self.len, self.count)
            })
            .unwrap_or(nexxo_status::NEXXO_PANIC);
            st = self.lock();
            *st = FlightState::Done(s);
            self.landed.notify_all();
        }
        loop {
            if let FlightState::Done(s) = *st {
                return s;
            }
            st = self.landed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The batch in flight of each handle (the binding writes one at a time per handle), so
/// that `batchWait` finds it.
static FLIGHTS: Mutex<Vec<(usize, Arc<Flight>)>> = Mutex::new(Vec::new());

fn flights() -> MutexGuard<'static, Vec<(usize, Arc<Flight>)>> {
    FLIGHTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a queued batch's async work carries from its start to its completion.
struct Job {
    flight: Arc<Flight>,
    deferred: napi_deferred,
    work: napi_async_work,
    buffer: napi_ref,
}

impl Job {
    /// Writes the batch if no thread has (cancelled or not, it is written before its
    /// Promise resolves), resolves the Promise with its status and frees what the job held.
    unsafe fn finish(self, api: &Api, env: napi_env) {
        let s = self.flight.land();
        let mut v = std::ptr::null_mut();
        (api.create_double)(env, s as u32 as f64, &mut v);
        (api.resolve_deferred)(env, self.deferred, v);
        if !self.buffer.is_null() {
            (api.delete_reference)(env, self.buffer);
        }
        if !self.work.is_null() {
            (api.delete_async_work)(env, self.work);
        }
    }
}

unsafe extern "C" fn flight_execute(_env: napi_env, data: *mut c_void) {
    (*(data as *const Job)).flight.land();
}

unsafe extern "C" fn flight_complete(env: napi_env, _status: napi_status, data: *mut c_void) {
    let job = Box::from_raw(data as *mut Job);
    flights().retain(|(_, f)| !Arc::ptr_eq(f, &job.flight));
    if let Some(api) = api() {
        job.finish(api, env);
    }
}

// batchSetPackedAsync(c, packed, len, count): nexxo_cache_batch_set_packed on libuv's
// thread pool; returns a Promise of its status (it never rejects). The caller leaves
// the Buffer unchanged and the handle open until it settles, and starts a handle's next
// batch only after this one settled or batchWait returned.
napi_fn!(batch_set_packed_async, |c| {
    let (p, cap) = c.bytes(1)?;
    let len = c.size(2)?;
    if len > cap {
        return Err(c"nexxo-cache: batchSetPackedAsync's length is past its buffer's end");
    }
    let cache = c.ptr::<nexxo_cache>(0)? as usize;
    let flight = Arc::new(Flight { state: Mutex::new(FlightState::Queued), landed: Condvar::new(), cache, packed: p as usize, len, count: c.size(3)? });
    let (api, env) = (c.api, c.env);
    let mut deferred = std::ptr::null_mut();
    let mut promise = std::ptr::null_mut();
    if (api.create_promise)(env, &mut deferred, &mut promise) != NAPI_OK {
        return Err(c"nexxo-cache: batchSetPackedAsync could not make a Promise");
    }
    let mut job = Box::new(Job { flight: flight.clone(), deferred, work: std::ptr::null_mut(), buffer: std::ptr::null_mut() });
    let name = c.text(c"nexxo-cache batch");
    let queued = (api.create_reference)(env, c.arg(1)?, 1, &mut job.buffer) == NAPI_OK
        && (api.create_async_work)(env, std::ptr::null_mut(), name, flight_execute, flight_complete, (&mut *job as *mut Job).cast(), &mut job.work) == NAPI_OK;
    if queued {
        let data = Box::into_raw(job);
        if (api.queue_async_work)(env, (*data).work) == NAPI_OK {
            let mut fl = flights();
            fl.retain(|(h, _)| *h != cache);
            fl.push((cache, flight));
            return Ok(promise);
        }
        job = Box::from_raw(data);
    }
    // Not queued: written here, and the Promise resolved with its status.
    job.finish(api, env);
    Ok(promise)
});

// batchWait(c): waits until the handle's batch in flight is written (writing it here if
// the thread pool has not started it) and returns its status; -1 when the handle has none
// (its Promise has resolved, or is about to: its status comes through it).
napi_fn!(batch_wait, |c| {
    let cache = c.ptr::<nexxo_cache>(0)? as usize;
    let flight = flights().iter().find(|(h, _)| *h == cache).map(|(_, f)| f.clone());
    Ok(match flight {
        Some(f) => c.status(f.land()),
        None => c.number(-1.0),
    })
});

// batchLanded(c): whether the handle has no batch in flight, or its batch is written
// (its Promise may not have settled yet: batchWait then returns its status at once).
// Never waits: the binding asks it while a loop of sets runs, to hand the writer the
// sets pending as soon as it is idle.
napi_fn!(batch_landed, |c| {
    let cache = c.ptr::<nexxo_cache>(0)? as usize;
    let flight = flights().iter().find(|(h, _)| *h == cache).map(|(_, f)| f.clone());
    Ok(c.boolean(flight.is_none_or(|f| matches!(*f.lock(), FlightState::Done(_)))))
});

// set(c, category, key, keyLen, value, valueLen): one synchronous write (setSync).
napi_fn!(set, |c| {
    let (cat, cat_len) = c.bytes(1)?;
    let (key, key_cap) = c.bytes(2)?;
    let key_len = c.size(3)?;
    let (value, value_cap) = c.bytes(4)?;
    let value_len = c.size(5)?;
    if key_len > key_cap || value_len > value_cap || !cat_terminated(cat, cat_len) {
        return Err(c"nexxo-cache: set's lengths do not fit its buffers");
    }
    Ok(c.status(crate::cache::nexxo_cache_set(c.ptr::<nexxo_cache>(0)?, cat.cast(), key, key_len, value, value_len)))
});

// batchGetPacked(c, packed, len, count, out, cap, outLen): outLen as getInto's.
napi_fn!(batch_get_packed, |c| {
    let (p, p_cap) = c.bytes(1)?;
    let len = c.size(2)?;
    let count = c.size(3)?;
    let (out, out_cap) = c.bytes(4)?;
    let cap = c.size(5)?;
    let (out_len, out_len_cap) = c.bytes(6)?;
    if len > p_cap || cap > out_cap || out_len_cap < std::mem::size_of::<usize>() {
        return Err(c"nexxo-cache: batchGetPacked's lengths do not fit its buffers");
    }
    let mut got = 0usize;
    let s = crate::packed::nexxo_cache_batch_get_packed(c.ptr::<nexxo_cache>(0)?, p, len, count, out, cap, &mut got);
    std::ptr::copy_nonoverlapping((&got as *const usize).cast::<u8>(), out_len, std::mem::size_of::<usize>());
    Ok(c.status(s))
});

// stats(c, out): out gets the nexxo_stats fields.
napi_fn!(stats, |c| {
    let out = c.arg(1)?;
    let mut s = std::mem::MaybeUninit::<nexxo_stats>::zeroed().assume_init();
    let r = crate::cache::nexxo_cache_stats(c.ptr::<nexxo_cache>(0)?, &mut s);
    if r == nexxo_status::NEXXO_OK {
        c.stats_into(out, &s);
    }
    Ok(c.status(r))
});

// categoryStats(c, category, out)
napi_fn!(category_stats, |c| {
    let name = c.string(1)?;
    let out = c.arg(2)?;
    let mut s = std::mem::MaybeUninit::<nexxo_stats>::zeroed().assume_init();
    let r = crate::cache::nexxo_cache_category_stats(c.ptr::<nexxo_cache>(0)?, name.as_ptr().cast(), &mut s);
    if r == nexxo_status::NEXXO_OK {
        c.stats_into(out, &s);
    }
    Ok(c.status(r))
});

// del(c, category, key, keyLen): the category NUL-terminated bytes, the key a Buffer.
napi_fn!(del, |c| {
    let (cat, cat_len) = c.bytes(1)?;
    let (key, key_cap) = c.bytes(2)?;
    let key_len = c.size(3)?;
    if key_len > key_cap || !cat_terminated(cat, cat_len) {
        return Err(c"nexxo-cache: delete's lengths do not fit its buffers");
    }
    Ok(c.status(crate::cache::nexxo_cache_delete(c.ptr::<nexxo_cache>(0)?, cat.cast(), key, key_len)))
});

napi_fn!(flush, |c| { Ok(c.status(crate::cache::nexxo_cache_flush(c.ptr::<nexxo_cache>(0)?))) });

// compact(c, category or null)
napi_fn!(compact, |c| {
    let cat = c.opt_string(1)?;
    let p = cat.as_ref().map_or(std::ptr::null(), |b| b.as_ptr().cast());
    Ok(c.status(crate::cache::nexxo_cache_compact(c.ptr::<nexxo_cache>(0)?, p)))
});

// enforcePolicy(c, out): out gets the nexxo_policy_report fields.
napi_fn!(enforce_policy, |c| {
    let out = c.arg(1)?;
    let mut r = std::mem::MaybeUninit::<crate::cache::nexxo_policy_report>::zeroed().assume_init();
    let s = crate::cache::nexxo_cache_enforce_policy(c.ptr::<nexxo_cache>(0)?, &mut r);
    if s == nexxo_status::NEXXO_OK {
        c.counts_into(
            out,
            &[
                (c"evicted_entries", r.evicted_entries),
                (c"evicted_bytes", r.evicted_bytes),
                (c"stored_bytes_before", r.stored_bytes_before),
                (c"stored_bytes_after", r.stored_bytes_after),
            ],
        );
        c.set(out, c"compacted", c.boolean(r.compacted));
    }
    Ok(c.status(s))
});

// statsJsonText(c, out): out.text is the library's JSON statistics (nexxo_cache_stats_json).
napi_fn!(stats_json_text, |c| {
    let out = c.arg(1)?;
    let mut b = crate::bytes::nexxo_bytes::EMPTY;
    let r = crate::cache::nexxo_cache_stats_json(c.ptr::<nexxo_cache>(0)?, &mut b);
    if r == nexxo_status::NEXXO_OK {
        let text = if b.data.is_null() { &[][..] } else { std::slice::from_raw_parts(b.data, b.len) };
        let mut v = std::ptr::null_mut();
        (c.api.create_string_utf8)(c.env, text.as_ptr().cast(), text.len(), &mut v);
        crate::bytes::nexxo_bytes_free(&mut b);
        c.set(out, c"text", v);
    }
    Ok(c.status(r))
});

// address(buffer): the address of its first byte (0 for an empty one).
napi_fn!(address, |c| {
    let (p, len) = c.bytes(0)?;
    Ok(c.number(if len == 0 { 0.0 } else { p as usize as f64 }))
});

// hasSymbol(name): whether this library exports `name` (the binding's check that the
// library is not older than it).
napi_fn!(has_symbol, |c| {
    let name = c.string(0)?;
    Ok(c.boolean(own_symbol(&name)))
});

/// Whether the NUL-terminated category bytes at `p` end within `len`.
unsafe fn cat_terminated(p: *const u8, len: usize) -> bool {
    len > 0 && std::slice::from_raw_parts(p, len).contains(&0)
}

/// Whether this shared library (not some other object of the process) exports `name`.
unsafe fn own_symbol(name: &[u8]) -> bool {
    let mut info: libc::Dl_info = std::mem::zeroed();
    if libc::dladdr(napi_register_module_v1 as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
        return false;
    }
    let h = libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
    if h.is_null() {
        return false;
    }
    let found = !libc::dlsym(h, name.as_ptr().cast()).is_null();
    libc::dlclose(h);
    found
}

/// Called by Node's `process.dlopen` of this library: adds the functions above to
/// `exports` under the names the binding's koffi declarations had. Returns `exports`
/// unchanged when the process has no Node-API (the binding then uses koffi).
///
/// cbindgen:ignore
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let Some(api) = api() else { return exports };
    let fns: [(&CStr, napi_callback); 24] = [
        (c"version", version),
        (c"statusStr", status_str),
        (c"optionsNew", options_new),
        (c"optionsFree", options_free),
        (c"open", open),
        (c"close", close),
        (c"getIntoAt", get_into_at),
        (c"getInto", get_into),
        (c"batchSetPacked", batch_set_packed),
        (c"batchSetPackedAsync", batch_set_packed_async),
        (c"batchWait", batch_wait),
        (c"batchLanded", batch_landed),
        (c"set", set),
        (c"batchGetPacked", batch_get_packed),
        (c"stats", stats),
        (c"categoryStats", category_stats),
        (c"statsJsonText", stats_json_text),
        (c"del", del),
        (c"flush", flush),
        (c"compact", compact),
        (c"enforcePolicy", enforce_policy),
        (c"address", address),
        (c"hasSymbol", has_symbol),
        (c"napiVersion", napi_version),
    ];
    for (name, f) in fns {
        let mut v = std::ptr::null_mut();
        if (api.create_function)(env, name.as_ptr(), name.to_bytes().len(), f, std::ptr::null_mut(), &mut v) != NAPI_OK {
            return exports;
        }
        if (api.set_named_property)(env, exports, name.as_ptr(), v) != NAPI_OK {
            return exports;
        }
    }
    exports
}

// napiVersion(): the version of this module's functions (1): the binding uses them only
// when it knows that version.
napi_fn!(napi_version, |c| { Ok(c.number(1.0)) });

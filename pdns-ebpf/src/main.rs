//! The kernel-side DNS filter. The socket filter itself lands with live
//! capture (`pdns-sensor run`); until then this is an empty eBPF object so the
//! workspace keeps its final shape. Build it only for `bpfel-unknown-none`.
#![no_std]
#![no_main]

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

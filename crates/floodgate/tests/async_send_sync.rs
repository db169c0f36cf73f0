//! The public futures and types can cross threads (`tokio::spawn` needs `Send`).

use floodgate::{Limiter, OwnedPermit, Permit, Priority, batch};

fn is_send<T: Send>(_: &T) {}
fn is_send_sync<T: Send + Sync>() {}

#[test]
fn limiter_types_and_futures_are_send() {
    is_send_sync::<Limiter>();
    is_send_sync::<OwnedPermit>();
    is_send_sync::<Permit<'static>>();
    let l = Limiter::new(1);
    is_send(&l.acquire());
    is_send(&l.acquire_with(Priority::HIGHEST));
    is_send(&l.acquire_owned());
    is_send(&l.acquire_leased(std::time::Duration::from_secs(1)));
    is_send(&l.drain(std::time::Duration::from_secs(1)));
    is_send(&batch::run_all(0..3, &l, |i| async move { Ok::<_, ()>(i) }));
    is_send(&batch::run_all_settled(0..3, 2, |i| async move {
        Ok::<_, ()>(i)
    }));
}

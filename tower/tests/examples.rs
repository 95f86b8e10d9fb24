//! The examples, run as tests: each starts its servers on 127.0.0.1 and checks over HTTP
//! that every layer did what it should (see each example's steps).

#[path = "../examples/axum_server.rs"]
mod axum_server;
#[path = "../examples/hyper_client.rs"]
mod hyper_client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_server_times_out_and_turns_away_under_its_layers() {
    axum_server::self_test().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hyper_client_retries_hedges_and_breaks_under_its_layers() {
    hyper_client::run().await.unwrap();
}

//! The embedded local Kafka: librdkafka's mock cluster, kept on a thread of its own (its handle cannot move
//! between threads), with an optional fixed bootstrap address forwarded to it.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;
use tokio::net::{TcpListener, TcpStream};

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::Sender<Result<(), String>>,
    },
    Stop,
}

/// A running mock cluster.
pub struct EmbeddedKafka {
    bootstrap: String,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedKafka {
    /// Starts a cluster of `brokers` brokers on random local ports.
    pub fn start(brokers: i32) -> anyhow::Result<EmbeddedKafka> {
        let (commands, inbox) = mpsc::channel::<Command>();
        let (ready, started) = mpsc::channel::<Result<String, String>>();
        let thread = std::thread::Builder::new().name("mock-kafka".into()).spawn(move || {
            let cluster = match MockCluster::new(brokers) {
                Ok(cluster) => cluster,
                Err(err) => {
                    let _ = ready.send(Err(err.to_string()));
                    return;
                }
            };
            let _ = ready.send(Ok(cluster.bootstrap_servers()));
            while let Ok(command) = inbox.recv() {
                match command {
                    Command::CreateTopic {
                        name,
                        partitions,
                        reply,
                    } => {
                        let _ = reply.send(cluster.create_topic(&name, partitions, 1).map_err(|e| e.to_string()));
                    }
                    Command::Stop => break,
                }
            }
        })?;
        let bootstrap = started.recv()?.map_err(|e| anyhow::anyhow!("mock cluster: {e}"))?;
        Ok(EmbeddedKafka {
            bootstrap,
            commands,
            thread: Some(thread),
        })
    }

    /// The cluster's own bootstrap servers (random ports).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic (topics are also created on first produce, with the cluster's default partitions).
    pub fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::CreateTopic {
                name: name.to_owned(),
                partitions,
                reply,
            })
            .map_err(|_| anyhow::anyhow!("the mock cluster has stopped"))?;
        answer.recv()?.map_err(|e| anyhow::anyhow!("create topic {name}: {e}"))
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections on `listen` and forwards each to `target`, until the task is dropped. Kafka clients
/// only use the bootstrap address for their first request; the brokers' own addresses are local too.
pub async fn forward(listen: &str, target: String) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    Ok(tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }))
}

//! `--flash FILE` (feature `flash`): the `--stdin` outbox journalled in a
//! file that stands for the device's flash, through the driver's
//! `FlashOutbox`. Without the feature (or the flag) lines go to the outbox
//! alone (`Link::try_publish`).

use bc26_mqtt::supervisor::{Link, Ticket};
use bc26_mqtt::{Error, QoS};

use crate::args::Run;

/// The outbox's way in: the flash outbox if `--flash` was given.
pub struct Durable {
    #[cfg(feature = "flash")]
    fo: Option<&'static bc26_mqtt::supervisor::FlashOutbox<'static, file::FileFlash>>,
}

impl Durable {
    /// Opens `--flash` (if given): hands what it holds to the outbox.
    #[allow(unused_variables)]
    pub async fn open(link: Link<'static>, run: &'static Run) -> Result<Durable, String> {
        #[cfg(feature = "flash")]
        if let Some(path) = &run.args.flash {
            use bc26_mqtt::supervisor::{FlashOutbox, FlashOutboxConfig};
            let flash = file::FileFlash::open(path).map_err(|e| format!("--flash: {e}"))?;
            let buf: &'static mut [u8] = Box::leak(vec![0u8; 2048].into_boxed_slice());
            let mut config = FlashOutboxConfig::new(0..file::SIZE as u32);
            config.clock = || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as u32)
            };
            let fo = FlashOutbox::open(link, flash, buf, config)
                .await
                .map_err(|e| format!("--flash: {e}"))?;
            let fo: &'static _ = Box::leak(Box::new(fo));
            crate::out::emit(&crate::out::Ev::Reloaded {
                client: link.client().get(),
                messages: fo.stats().reloaded,
            });
            return Ok(Durable { fo: Some(fo) });
        }
        Ok(Durable {
            #[cfg(feature = "flash")]
            fo: None,
        })
    }

    /// Stores a line: in flash first with `--flash`, then in the outbox.
    /// `Ok(Some(msg_id))` with the ticket when it was journalled.
    pub async fn store(
        &self,
        link: Link<'static>,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<(Ticket, bool), Error> {
        #[cfg(feature = "flash")]
        if let Some(fo) = self.fo {
            let t = fo.try_publish(topic, payload, qos, retain).await?;
            return Ok((t, qos != QoS::AtMostOnce));
        }
        link.try_publish(topic, payload, qos, retain)
            .map(|t| (t, false))
    }

    /// The flash outbox's task (for ever; never ends without `--flash`).
    pub async fn run(&self) -> ! {
        #[cfg(feature = "flash")]
        if let Some(fo) = self.fo {
            fo.run().await
        }
        core::future::pending().await
    }

    /// At the end: removes what was delivered from the file now.
    pub async fn finish(&self) {
        #[cfg(feature = "flash")]
        if let Some(fo) = self.fo {
            if let Err(e) = fo.remove_ended().await {
                crate::out::error("flash", &e);
            }
        }
    }
}

#[cfg(feature = "flash")]
mod file {
    //! A file as a NOR flash: 16 pages of 4 KiB, erased (0xFF) when
    //! created; a write clears bits only (the old bytes AND the new).

    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    use embedded_storage_async::nor_flash::{
        ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
    };

    pub const PAGE: usize = 4096;
    pub const SIZE: usize = 16 * PAGE;

    pub struct FileFlash(File);

    #[derive(Debug)]
    pub struct Failed(NorFlashErrorKind);

    impl NorFlashError for Failed {
        fn kind(&self) -> NorFlashErrorKind {
            self.0
        }
    }

    impl FileFlash {
        pub fn open(path: &Path) -> std::io::Result<FileFlash> {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            let len = f.metadata()?.len() as usize;
            if len < SIZE {
                f.write_all_at(&vec![0xFF; SIZE - len], len as u64)?;
            }
            Ok(FileFlash(f))
        }

        fn check(offset: u32, len: usize, align: usize) -> Result<(), Failed> {
            if !(offset as usize).is_multiple_of(align) || !len.is_multiple_of(align) {
                return Err(Failed(NorFlashErrorKind::NotAligned));
            }
            if offset as usize + len > SIZE {
                return Err(Failed(NorFlashErrorKind::OutOfBounds));
            }
            Ok(())
        }
    }

    impl ErrorType for FileFlash {
        type Error = Failed;
    }

    impl ReadNorFlash for FileFlash {
        const READ_SIZE: usize = 4;

        async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Failed> {
            Self::check(offset, bytes.len(), 4)?;
            self.0
                .read_exact_at(bytes, u64::from(offset))
                .map_err(|_| Failed(NorFlashErrorKind::Other))
        }

        fn capacity(&self) -> usize {
            SIZE
        }
    }

    impl NorFlash for FileFlash {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = PAGE;

        async fn erase(&mut self, from: u32, to: u32) -> Result<(), Failed> {
            Self::check(from, to.saturating_sub(from) as usize, PAGE)?;
            self.0
                .write_all_at(&vec![0xFF; (to - from) as usize], u64::from(from))
                .map_err(|_| Failed(NorFlashErrorKind::Other))
        }

        async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Failed> {
            Self::check(offset, bytes.len(), 4)?;
            let mut old = vec![0u8; bytes.len()];
            self.read(offset, &mut old).await?;
            for (o, n) in old.iter_mut().zip(bytes) {
                *o &= n;
            }
            self.0
                .write_all_at(&old, u64::from(offset))
                .map_err(|_| Failed(NorFlashErrorKind::Other))
        }
    }

    impl MultiwriteNorFlash for FileFlash {}
}

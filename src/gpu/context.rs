//! The GPU context: adapter choice, device creation with the adapter's limits, and error
//! scopes that turn wgpu's validation and memory errors into typed errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gpu::shader::{compose, module, Kernel, ModelOps};
use crate::options::{LimitsChoice, Precision};

/// What the report and `gradcheck devices` say about an adapter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    /// A software rasterizer on the CPU (lavapipe, llvmpipe, WARP), not a GPU.
    pub software: bool,
    pub driver: String,
    pub f64: bool,
    pub timestamps: bool,
    pub max_buffer_size: u64,
    pub max_storage_binding: u64,
    /// The limits the device was opened with: the adapter's own, "webgpu" or "downlevel".
    pub limits: String,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let features = adapter.features();
        let limits = adapter.limits();
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            name: info.name,
            backend: info.backend.to_string(),
            device_type: format!("{:?}", info.device_type),
            software: info.device_type == wgpu::DeviceType::Cpu,
            driver,
            f64: features.contains(wgpu::Features::SHADER_F64),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            max_buffer_size: limits.max_buffer_size,
            max_storage_binding: limits.max_storage_buffer_binding_size,
            limits: LimitsChoice::Adapter.as_str().into(),
        }
    }
}

/// A device and queue, created once and reused by every check of a run.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    summary: AdapterSummary,
    /// Errors no scope caught (raised from another thread, or after a device loss).
    stray_errors: Arc<Mutex<Vec<String>>>,
    /// Why the device was lost, once it is: every error after that is a consequence.
    lost: Arc<Mutex<Option<String>>>,
    /// Compiled kernels by name, precision and constants: a check's second round (kink
    /// re-checks, slices) and every later check on this device reuse them.
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
}

/// What makes one compiled kernel: its name, precision, prepended constants and (for a
/// kernel that runs the model) the model's ops.
type PipelineKey = (
    &'static str,
    Precision,
    Vec<(String, u32)>,
    Option<ModelOps>,
);

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter the instance sees (honouring `WGPU_BACKEND`).
pub fn list_adapters() -> Vec<AdapterSummary> {
    let adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    adapters.iter().map(AdapterSummary::of).collect()
}

/// Preference among adapters: discrete, integrated, virtual, then CPU; Vulkan first.
fn rank(adapter: &wgpu::Adapter) -> (u8, u8) {
    let info = adapter.get_info();
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, backend)
}

impl GpuContext {
    /// Opens the adapter whose name contains `name` (case-insensitive), else the one named
    /// by `WGPU_ADAPTER_NAME`, else the best one present, asking for `limits`.
    pub fn new(name: Option<&str>, choice: LimitsChoice) -> Result<Self> {
        let wanted = name
            .map(str::to_owned)
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok());
        let mut adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
        if let Some(wanted) = &wanted {
            let needle = wanted.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
            if adapters.is_empty() {
                let names: Vec<String> = list_adapters()
                    .into_iter()
                    .map(|a| format!("{} ({})", a.name, a.backend))
                    .collect();
                return Err(Error::NoAdapter(format!(
                    " whose name contains '{wanted}' (adapters: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        adapters.sort_by_key(rank);
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            Error::NoAdapter(
                " (install a Vulkan driver, e.g. Mesa's lavapipe: mesa-vulkan-drivers)".into(),
            )
        })?;
        let mut summary = AdapterSummary::of(&adapter);
        let wanted_features = wgpu::Features::SHADER_F64 | wgpu::Features::TIMESTAMP_QUERY;
        let limits = match choice {
            LimitsChoice::Adapter => adapter.limits(),
            LimitsChoice::Webgpu => wgpu::Limits::default(),
            LimitsChoice::Downlevel => wgpu::Limits::downlevel_defaults(),
        };
        summary.limits = choice.as_str().into();
        summary.max_storage_binding = limits.max_storage_buffer_binding_size;
        summary.max_buffer_size = limits.max_buffer_size;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("gradcheck"),
            required_features: adapter.features() & wanted_features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                Error::Gpu(format!(
                    "cannot open '{}' with {} limits: {e}",
                    summary.name,
                    choice.as_str()
                ))
            })?;
        let stray_errors = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stray_errors);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .expect("error sink")
                .push(first_line(&e.to_string()));
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *lost_sink.lock().expect("lost sink") = Some(format!("{reason:?}: {message}"));
        });
        Ok(Self {
            device,
            queue,
            limits,
            summary,
            stray_errors,
            lost,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// The compute pipeline of `kernel` in `precision` with `constants`, compiled on first
    /// use and cached for the life of the device (wgpu pipelines are cheap handles).
    pub(crate) fn pipeline(
        &self,
        kernel: Kernel,
        precision: Precision,
        constants: &[(&str, u32)],
        ops: &ModelOps,
    ) -> wgpu::ComputePipeline {
        let key: PipelineKey = (
            kernel.name,
            precision,
            constants.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            kernel.model.then(|| ops.clone()),
        );
        let mut cache = self.pipelines.lock().expect("pipeline cache");
        cache
            .entry(key)
            .or_insert_with(|| {
                let shader = module(
                    &self.device,
                    kernel.name,
                    &compose(kernel, precision, constants, ops),
                );
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(kernel.name),
                        layout: None,
                        module: &shader,
                        entry_point: Some("main"),
                        // Every kernel writes workgroup memory before reading it; zeroing it
                        // (the default) costs ~10 µs per workgroup on lavapipe, more than a
                        // small perturbation's work.
                        compilation_options: wgpu::PipelineCompilationOptions {
                            zero_initialize_workgroup_memory: false,
                            ..Default::default()
                        },
                        cache: None,
                    })
            })
            .clone()
    }

    /// The adapter in use.
    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Whether kernels can run in f64 here.
    pub fn supports_f64(&self) -> bool {
        self.summary.f64
    }

    /// Whether GPU time can be measured with timestamp queries.
    pub fn supports_timestamps(&self) -> bool {
        self.summary.timestamps
    }

    /// Runs `work` inside validation, out-of-memory and internal error scopes and returns
    /// the first error any of them caught, so a GPU fault becomes an `Err`, never a panic.
    pub(crate) fn scoped<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = work();
        let errors = [validation.pop(), memory.pop(), internal.pop()].map(pollster::block_on);
        if let Some(why) = self.lost.lock().expect("lost sink").clone() {
            return Err(Error::Gpu(format!(
                "the device '{}' was lost ({})",
                self.summary.name,
                first_line(&why)
            )));
        }
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(Error::Gpu(first_line(&e.to_string())));
        }
        if let Some(e) = self
            .stray_errors
            .lock()
            .expect("error sink")
            .drain(..)
            .next()
        {
            return Err(Error::Gpu(e));
        }
        out
    }

    /// Refuses f64 work on an adapter without f64 shaders.
    pub fn ensure_precision(&self, precision: crate::options::Precision) -> Result<()> {
        if precision == crate::options::Precision::F64 && !self.supports_f64() {
            return Err(Error::Unsupported {
                adapter: self.summary.name.clone(),
                what: "f64 shaders (SHADER_F64); f32 runs there".into(),
            });
        }
        Ok(())
    }

    /// The largest storage buffer one binding can hold, in bytes.
    pub fn binding_limit(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// The same device with its bindings held to `bytes` (and no more than its own limit):
    /// every check this context makes refuses larger ones, as a device with that limit
    /// would. For tests of the largest problems a binding allows, at a size they can run.
    #[doc(hidden)]
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        let limit = self.limits.max_storage_buffer_binding_size.min(bytes);
        self.limits.max_storage_buffer_binding_size = limit;
        self.summary.max_storage_binding = limit;
        self
    }

    /// Destroys the device as a driver reset or an unplugged GPU would: every later call
    /// on this context must fail with [`Error::Gpu`]. For tests of that path.
    #[doc(hidden)]
    pub fn lose_device(&self) {
        self.device.destroy();
    }

    /// Waits for all submitted work.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))
    }
}

/// wgpu's messages span many lines; the report wants one.
fn first_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
